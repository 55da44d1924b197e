"""Ingestion from Kafka: structured and binary mode, poison messages to the
quarantine and the DLQ, and nothing lost while the database is down."""
import json
import subprocess
import time

from harness import Broker, Postgres, check, wait_for
from ingest_util import event, review

TOPIC = "reviews.completed"


def kcat_produce(bootstrap, lines, key="k", headers=None, topic=TOPIC):
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-k", key]
    for h in headers or []:
        args += ["-H", h]
    r = subprocess.run(args, input="".join(l + "\n" for l in lines), capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "kcat produced", 0, r.stderr)


def kcat_consume(bootstrap, topic, count):
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", str(count),
                        "-e", "-J"], capture_output=True, text=True, timeout=60)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def started():
    b = Broker().start()
    b.wait_ready()
    return b, b.read("kafka.bootstrap").strip()


def count(b, sql):
    return int(b.psql(sql))


def test_structured_and_binary_mode_from_kcat_are_stored():
    b, k = started()
    kcat_produce(k, [json.dumps(event("US-TN", "k-1", review("US-TN", "K-1")))])
    data = review("US-GA", "K-2")
    kcat_produce(k, [json.dumps(data)], headers=[
        "ce_specversion=1.0", "ce_type=org.npcs.review.completed.v1",
        "ce_source=urn:npcs:jurisdiction:US-GA", "ce_id=k-2", "ce_time=2026-03-01T10:00:00Z",
        "content-type=application/json"])
    wait_for(lambda: count(b, "SELECT count(*) FROM events WHERE channel = 'kafka'") == 2, 20,
             "both messages stored")
    rows = b.psql("SELECT string_agg(event_id || ':' || (envelope->'data'->>'review_id'), ',' ORDER BY event_id) FROM events")
    check(rows == "k-1:K-1,k-2:K-2", "each mode's event stored with its data", "k-1:K-1,k-2:K-2", rows)
    check(count(b, "SELECT count(*) FROM facts") == 8, "facts extracted from both")


def test_poison_goes_to_quarantine_and_dlq_and_the_next_message_is_stored():
    b, k = started()
    bad_schema = event("US-TN", "k-bad", review("US-TN", "K-BAD"))
    bad_schema["data"]["incident"]["type"] = "accident"
    kcat_produce(k, ["this is not json", json.dumps(bad_schema),
                     json.dumps(event("US-TN", "k-good", review("US-TN", "K-GOOD")))], key="same-partition")
    wait_for(lambda: count(b, "SELECT count(*) FROM events WHERE event_id = 'k-good'") == 1, 20,
             "the good message after the poison ones to be stored")
    q = b.psql("SELECT string_agg(status || ' ' || (errors->0->>'pointer'), ',' ORDER BY \"offset\") FROM quarantine")
    check(q == "400 ,422 /data/incident/type", "both refused messages quarantined with their errors",
          "400 ,422 /data/incident/type", q)
    payload = b.psql("SELECT convert_from(payload, 'UTF8') FROM quarantine WHERE status = 400")
    check(payload == "this is not json", "the quarantine keeps the message as it came", None, payload)
    dlq = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(kcat_consume(k, TOPIC + ".dlq", 2)),
                   20, "both refused messages in the DLQ")
    errors = [json.loads(dict(zip(m["headers"][::2], m["headers"][1::2]))["sn-error"]) for m in dlq]
    check(sorted(e["status"] for e in errors) == [400, 422], "each DLQ copy has an sn-error header",
          [400, 422], errors)
    check(all(m["key"] == "same-partition" for m in dlq), "the DLQ copy keeps the key")
    check(count(b, "SELECT count(*) FROM events") == 1, "nothing refused was stored as an event")


def test_a_conflicting_reuse_of_an_id_is_quarantined():
    b, k = started()
    kcat_produce(k, [json.dumps(event("US-TN", "k-c", review("US-TN", "K-C")))])
    wait_for(lambda: count(b, "SELECT count(*) FROM events") == 1, 20, "the first version")
    changed = event("US-TN", "k-c", review("US-TN", "K-C", finalized_at="2026-04-01T00:00:00Z"))
    kcat_produce(k, [json.dumps(event("US-TN", "k-c", review("US-TN", "K-C"))), json.dumps(changed)])
    wait_for(lambda: count(b, "SELECT count(*) FROM quarantine") == 1, 20, "the conflict to be quarantined")
    check(b.psql("SELECT status FROM quarantine") == "409", "status 409")
    check(count(b, "SELECT count(*) FROM events") == 1, "the duplicate and the conflict add no event")


def test_nothing_is_lost_while_the_database_is_down():
    provider, k = started()  # provides the Kafka cluster
    pg = Postgres().start()
    b = Broker(embedded=False, name="external", env={
        "SN_DATABASE_URL": pg.conninfo(), "SN_KAFKA_BOOTSTRAP_SERVERS": k,
        "SN_KAFKA_GROUP_ID": "external-group", "SN_DATABASE_RECONNECT_MAX": "1s"}).start()
    b.wait_ready(20)
    first = [json.dumps(event("US-TN", "d-%d" % i, review("US-TN", "D-%d" % i))) for i in range(5)]
    for i, line in enumerate(first):
        kcat_produce(k, [line], key="key-%d" % i)
    wait_for(lambda: int(pg.psql("SELECT count(*) FROM events WHERE event_id LIKE 'd-%'")) == 5, 20,
             "the first five stored")
    pg.stop()
    wait_for(lambda: b.readyz()[0] == 503, 10, "the broker to notice")
    later = [json.dumps(event("US-TN", "d-%d" % i, review("US-TN", "D-%d" % i))) for i in range(5, 25)]
    for i, line in enumerate(later):
        kcat_produce(k, [line], key="key-%d" % i)
    kcat_produce(k, ["poison while down"], key="key-x")
    time.sleep(3)
    pg.start()
    wait_for(lambda: int(pg.psql("SELECT count(*) FROM events WHERE event_id LIKE 'd-%'")) == 25, 40,
             "every message produced while the database was down to be stored")
    wait_for(lambda: int(pg.psql("SELECT count(*) FROM quarantine")) == 1, 20, "the poison quarantined")
    check(int(pg.psql("SELECT count(DISTINCT event_id) FROM events")) == 25, "each once")
    check(b.stop() == 0, "clean stop")
