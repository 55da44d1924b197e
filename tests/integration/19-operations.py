"""Operations: snctl status over two processes on one database (heartbeats,
the leader, the Kafka partitions split between them, a killed process shown
gone, a stopped one stopped, the outbox and the quarantine); a jurisdiction's
export, purge and export again (nothing left, the notices evaluated again
without its facts, counts checked against SQL); the retention deleting only
what is older than allowed, and refusing a retention shorter than a rule's
window; the first admin token of a production start."""
import base64
import json
import os
import subprocess
import tempfile
import time

from harness import SNCTL, Broker, check, http, wait_for
from ingest_util import event, post, review
from rules_util import RULES_DIR, api, caught_up, post_simulated, sql_counts, stored_revisions


def started(**kw):
    b = Broker(**kw).start()
    b.wait_ready()
    return b


def external(provider, dbname, name, **env):
    """A broker process outside --embedded on provider's PostgreSQL (database
    dbname) and Kafka mock, its first admin token in its own file."""
    d = tempfile.mkdtemp(prefix="sn-ops-")
    base = {"SN_DATABASE_URL": provider.conninfo(dbname),
            "SN_KAFKA_BOOTSTRAP_SERVERS": provider.read("kafka.bootstrap").strip(),
            "SN_AUTH_ADMIN_TOKEN_FILE": os.path.join(d, "admin.token"),
            "SN_KAFKA_GROUP_ID": "ops-" + dbname, "SN_CLUSTER_HEARTBEAT": "200ms",
            "SN_RULES_PATH": RULES_DIR, "SN_RULES_TICK": "0s", "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}
    base.update(env)
    b = Broker(embedded=False, name=name, env=base).start()
    b.wait_ready(60)
    return b, os.path.join(d, "admin.token")


def status(b, token_file):
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", token_file, "status", "--json"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "snctl status", 0, (r.returncode, r.stderr))
    return json.loads(r.stdout)


def test_status_shows_every_process_the_leader_and_what_waits():
    provider = started(name="provider")
    provider.psql("CREATE DATABASE ops")
    p1, token1 = external(provider, "ops", "ops-1")
    p2, token2 = external(provider, "ops", "ops-2")
    check(open(token1).read() != open(token2).read(), "each first start made its own admin token file")
    check(oct(os.stat(token1).st_mode & 0o777) == "0o600", "the token file is 0600", "0o600",
          oct(os.stat(token1).st_mode & 0o777))
    ids = {}

    def both_partitions_split():
        s = status(p1, token1)
        alive = [p for p in s["processes"] if p["state"] == "alive"]
        parts = [sorted(x["partition"] for x in p["kafka"]["partitions"]) for p in alive]
        if len(alive) == 2 and all(parts) and sorted(sum(parts, [])) == [0, 1, 2]:
            ids["s"] = s
            return True
        return False
    wait_for(both_partitions_split, 60, "the consumer group to split the 3 partitions between the 2 processes")
    s = ids["s"]
    check(len([p for p in s["processes"] if p["leader"]]) == 1 and s["leader"] in
          [p["id"] for p in s["processes"]], "exactly one leader, named", None, s)
    check({p["http_address"] for p in s["processes"]} == {p1.address, p2.address},
          "both processes with their addresses", {p1.address, p2.address}, s["processes"])
    check(all(p["heartbeat_age_seconds"] < 5 for p in s["processes"]), "fresh heartbeats", None, s["processes"])
    check(s["outbox"] == {"depth": 0, "oldest_undelivered_seconds": 0, "dead": 0} and s["quarantine"] == 0,
          "nothing waiting yet", None, s)

    # a malformed Kafka message: quarantined, and counted
    bootstrap = provider.read("kafka.bootstrap").strip()
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "reviews.completed", "-p", "0"], input=b"{not json",
                   check=True, timeout=30)
    wait_for(lambda: status(p2, token2)["quarantine"] == 1, 30, "the quarantine to show the bad message")

    # a notice to a webhook that refuses connections: waiting in the outbox
    admin = open(token1).read().strip()
    st, body = api(p1, "/v1/subscriptions", admin, "POST",
                   {"subscriber": "US-TN", "channel": "webhook", "target": "http://127.0.0.1:9/hook",
                    "filter": []})
    check(st == 201, "subscription created", 201, (st, body))
    post_simulated_to(p1, token1, "--seed", "3", "--reviews", "120", "--jurisdictions", "8",
                      "--from", "2026-05-01", "--to", "2026-10-31")
    wait_for(lambda: status(p1, token1)["outbox"]["depth"] > 0, 30, "deliveries waiting for the dead webhook")
    s = status(p1, token1)
    check(s["outbox"]["oldest_undelivered_seconds"] >= 0 and s["engine"]["facts_waiting"] >= 0,
          "outbox and engine figures", None, s)

    # kill -9 the leader: shown gone, the other takes over
    leader = p1 if s["leader"].split(":")[1] == str(p1.proc.pid) else p2
    other, other_token = (p2, token2) if leader is p1 else (p1, token1)
    leader_id = s["leader"]
    leader.kill9()

    def taken_over():
        s = status(other, other_token)
        states = {p["id"]: p["state"] for p in s["processes"]}
        return states.get(leader_id) == "gone" and s["leader"] not in (None, leader_id) and s
    s = wait_for(taken_over, 30, "the killed leader shown gone and the other process leading")
    check(s["answered_by"] == s["leader"], "the survivor leads", s["answered_by"], s["leader"])
    # SIGTERM: the row says stopped
    check(other.stop() == 0, "the survivor stops cleanly on SIGTERM")
    rows = provider.psql("SELECT count(*) FROM processes WHERE stopped_at IS NOT NULL AND NOT leader", dbname="ops")
    check(rows == "1", "a clean shutdown marks the process stopped", "1", rows)

    # a purge while no process runs: the next leader corrects the notices at once
    active = [json.loads(l) for l in provider.psql(
        "SELECT body::text FROM notices WHERE status <> 'resolved'", dbname="ops").splitlines()]
    names = [j for n in active for j in n["jurisdictions"]]
    check(names, "active notices name jurisdictions", None, active)
    code = max(set(names), key=names.count)
    named = {n["id"]: n["revision"] for n in active if code in n["jurisdictions"]}
    provider.psql("SELECT sn_jurisdiction_purge('%s')" % code, dbname="ops")
    p3, token3 = external(provider, "ops", "ops-3")

    def corrected():
        now = {n["id"]: n for n in (json.loads(l) for l in provider.psql(
            "SELECT body::text FROM notices", dbname="ops").splitlines())}
        return all(now[i]["revision"] > r and code not in now[i]["jurisdictions"] for i, r in named.items())
    wait_for(corrected, 30, "the next leader to publish a revision without %s of each of %d notices"
             % (code, len(named)))
    state = provider.psql("SELECT purges || ' ' || purges_corrected FROM engine_state", dbname="ops")
    check(state == "1 1", "the purge is recorded as corrected", "1 1", state)


def post_simulated_to(b, token_file, *args):
    from rules_util import EMIT, SIMULATE
    sim = subprocess.run([SIMULATE] + list(args), capture_output=True, check=True, timeout=120)
    r = subprocess.run([EMIT, "--url", "http://" + b.address, "--token-file", token_file, "--batch", "50",
                        "--quiet"], input=sim.stdout, capture_output=True, timeout=300)
    check(r.returncode == 0, "sn-emit posted the simulated reviews", 0, r.stderr[-2000:])
    return sim.stdout.decode().splitlines()


def export(b, code, token=None):
    h = {"Authorization": "Bearer " + (token or b.read("admin.token").strip())}
    st, headers, raw = http("GET", b.url("/v1/jurisdictions/%s/export" % code), headers=h)
    check(st == 200 and headers["Content-Type"].startswith("application/x-ndjson"), "export " + code, 200, st)
    return [json.loads(l) for l in raw.decode().splitlines()]


def test_export_purge_export_and_the_notices_are_evaluated_again():
    b = started(env={"SN_RULES_TICK": "0s"})
    lines = post_simulated(b, "--seed", "21", "--reviews", "400", "--jurisdictions", "8",
                           "--from", "2026-01-01", "--to", "2026-06-30")
    wait_for(lambda: caught_up(b), 30, "the engine to evaluate every fact")
    sent = [json.loads(l) for l in lines]
    by_j = {}
    for ev in sent:
        by_j.setdefault(ev["data"]["jurisdiction"], []).append(ev)
    # the jurisdiction named in the most active notices
    active = [n for n in api(b, "/v1/notices?limit=200")[1]["items"] if n["status"] != "resolved"]
    code = max(by_j, key=lambda j: (sum(j in n["jurisdictions"] for n in active), len(by_j[j])))
    named = [n for n in active if code in n["jurisdictions"]]
    check(len(named) >= 3, "several active notices name " + code, ">=3", len(named))
    other_code = next(j for j in by_j if j != code)

    # refused Kafka messages claiming the jurisdiction (structured) and another (binary mode)
    bootstrap = b.read("kafka.bootstrap").strip()
    bad = dict(by_j[code][0], id="bad-1", data={"review_id": "x"})
    other_bad = by_j[other_code][0]
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "reviews.completed"], input=json.dumps(bad).encode(),
                   check=True, timeout=30)
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "reviews.completed", "-H", "ce_specversion=1.0",
                    "-H", "ce_type=org.npcs.review.completed.v1", "-H", "ce_id=bad-2",
                    "-H", "ce_source=" + other_bad["source"]], input=b"{}", check=True, timeout=30)
    wait_for(lambda: b.psql("SELECT count(*) FROM quarantine") == "2", 30, "both refused messages quarantined")
    got = export(b, code)
    kinds = {}
    for line in got:
        kinds.setdefault(line["record"], []).append(line)
    # as stored: the envelope of the structured mode (datacontenttype is implied)
    as_sent = {e["id"]: {k: v for k, v in e.items() if k != "datacontenttype"} for e in by_j[code]}
    check({e["id"]: e["event"] for e in kinds["event"]} == as_sent,
          "the export holds each event %s sent, as sent" % code, len(by_j[code]), len(kinds["event"]))
    own = {e["data"]["review_id"] for e in by_j[code]}
    check({r["review_id"] for r in kinds["review"]} == own and len(kinds["review"]) == len(own)
          and all(r["jurisdiction"] == code for r in kinds["review"]), "and each of its reviews, no one else's",
          len(own), len(kinds["review"]))
    stored_facts = b.psql("SELECT count(*) FROM facts WHERE jurisdiction = '%s'" % code)
    check(len(kinds["fact"]) == int(stored_facts) and all(f["jurisdiction"] == code for f in kinds["fact"]),
          "and its facts, no one else's", stored_facts, len(kinds["fact"]))
    check([json.loads(base64.b64decode(q["payload_base64"])) for q in kinds["quarantined"]] == [bad],
          "and its refused Kafka message, as it came, not another's", [bad], kinds.get("quarantined"))
    subscriber = create_subscriber(b, code)
    check(export(b, code, subscriber) == got, "the jurisdiction's own subscriber token exports the same")
    st, _, _ = http("GET", b.url("/v1/jurisdictions/%s/export" % other_code),
                    headers={"Authorization": "Bearer " + subscriber})
    check(st == 403, "but not another jurisdiction's", 403, st)

    # purge: a wrong confirmation deletes nothing
    before = b.psql("SELECT count(*) FROM events")
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token",
                        "jurisdiction", "purge", code], input=other_code + "\n", capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 2 and "nothing was deleted" in r.stderr, "a wrong confirmation is refused", 2,
          (r.returncode, r.stderr))
    check(b.psql("SELECT count(*) FROM events") == before, "nothing deleted")
    revisions_before = stored_revisions(b)
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token",
                        "jurisdiction", "purge", code], input=code + "\n", capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0 and "deleted %d events" % len(by_j[code]) in r.stdout
          and "1 quarantined" in r.stdout, "purge confirmed", 0,
          (r.returncode, r.stdout, r.stderr))
    check(export(b, code) == [], "export after purge gives nothing")
    left = b.psql("SELECT (SELECT count(*) FROM events WHERE source = 'urn:npcs:jurisdiction:%s') + "
                  "(SELECT count(*) FROM reviews WHERE jurisdiction = '%s') + "
                  "(SELECT count(*) FROM facts WHERE jurisdiction = '%s')" % (code, code, code))
    check(left == "0", "no event, review or fact of %s left" % code, "0", left)
    check(b.psql("SELECT count(*) FROM quarantine") == "1", "its quarantined message deleted, the other's kept")
    check(b.psql("SELECT count(*) FROM events") == str(int(before) - len(by_j[code])),
          "every other jurisdiction's events kept")

    # every notice that named it gets a revision without it, published at once
    def corrected():
        latest = {n["id"]: n for n in api(b, "/v1/notices?limit=200")[1]["items"]}
        return all(latest[n["id"]]["revision"] > n["revision"] for n in named) and latest
    latest = wait_for(corrected, 30, "a new revision of every notice that named " + code)
    new = [r for r in stored_revisions(b) if r not in revisions_before]
    check(new and all(r["status"] in ("updated", "resolved") for r in new), "updates or resolutions", None,
          [(r["id"], r["status"]) for r in new])
    lowered = 0
    for n in named:
        now = latest[n["id"]]
        check(code not in now["jurisdictions"], "the new revision does not name " + code, None, now)
        rev = [r for r in new if r["id"] == n["id"]][-1]
        want = sql_counts(b, rev["rule"], rev)
        have = [rev["counts"]["reviews"], rev["counts"]["jurisdictions"], rev["counts"]["improvement_opportunities"]]
        check(have == want, "counts of %s after the purge equal SQL's" % n["id"], want, have)
        lowered += rev["counts"]["reviews"] < n["counts"]["reviews"]
        check(rev["status"] == "resolved" or now["status"] != "resolved", "status consistent", None, now)
    check(lowered == len(named), "every one of them counts fewer reviews", len(named), lowered)
    entries = api(b, "/v1/audit?action=jurisdiction")[1]["items"]
    actions = sorted(e["action"] for e in entries)
    check(actions.count("jurisdiction.purge") == 1 and actions.count("jurisdiction.export") >= 3,
          "export and purge are in the audit log", None, actions)
    purge = next(e for e in entries if e["action"] == "jurisdiction.purge")
    check(purge["resource"]["deleted"]["events"] == len(by_j[code]), "the audit entry says what was deleted",
          None, purge)


def create_subscriber(b, code):
    st, body = api(b, "/v1/tokens", method="POST", body={"role": "subscriber", "jurisdiction": code})
    check(st == 201, "subscriber token", 201, (st, body))
    return body["token"]


def test_retention_deletes_only_what_is_older_than_allowed():
    rules = tempfile.mkdtemp(prefix="sn-rules-")
    with open(os.path.join(rules, "short.json"), "w") as f:
        json.dump({"rules": [{"id": "short", "match": ["kind=improvement_opportunity"], "window": "10d",
                              "levels": [{"severity": "advisory", "min_reviews": 2, "min_jurisdictions": 1}],
                              "repeat_interval": "0s", "resolve_after": "1d",
                              "headline": "h {reviews}", "summary": "s"}]}, f)
    # a retention shorter than the window is refused at start
    b = Broker(env={"SN_RULES_PATH": rules, "SN_RETENTION_FACTS": "5d"}, name="too-short").start()
    check(b.proc.wait(60) == 2, "retention.facts shorter than the window: exit 2", 2, b.proc.returncode)
    check(any("retention.facts" in l.get("msg", "") for l in b.logs()), "the log says why", None, b.tail())

    b = started(env={"SN_RULES_PATH": rules, "SN_RULES_TICK": "1s", "SN_RETENTION_EVENTS": "20d",
                     "SN_RETENTION_FACTS": "20d", "SN_RETENTION_DELIVERY_ATTEMPTS": "1d",
                     "SN_RETENTION_INTERVAL": "1s"})
    admin = b.read("admin.token").strip()
    now = time.time()

    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    for i, age in enumerate([60, 30, 15, 2]):
        st, _, _ = post(b, admin, event("US-TN", "e%d" % age, review("US-TN", "R-%d" % age,
                                                                     finalized_at=iso(now - age * 86400))))
        check(st == 202, "review %d days old accepted" % age, 202, st)
    # received long ago (the events' own time is when the broker got them)
    b.psql("UPDATE events SET received_at = now() - interval '25 days' WHERE event_id IN ('e60', 'e2')")
    b.psql("UPDATE events SET received_at = now() - interval '19 days' WHERE event_id = 'e30'")
    # two delivery attempts, one recorded 2 days ago
    b.psql("INSERT INTO notices (id, rule, group_key, group_labels, started_at, revision, status, severity, "
           "issued_at, body) VALUES ('sn-x', 'short', '', '{}', now(), 1, 'issued', 'advisory', now(), '{}');"
           "INSERT INTO notice_revisions (notice_id, revision, status, severity, issued_at, body) VALUES "
           "('sn-x', 1, 'issued', 'advisory', now(), '{}');"
           "INSERT INTO outbox (notice_id, revision, channel, target, state) VALUES "
           "('sn-x', 1, 'webhook', 'http://x.invalid/', 'dead');"
           "INSERT INTO delivery_attempts (outbox_id, attempt, started_at, latency_ms, outcome) "
           "SELECT id, n, now() - n * interval '30 hours', 1, 'retry' FROM outbox, generate_series(0, 1) n "
           "WHERE notice_id = 'sn-x'")
    wait_for(lambda: any(l.get("msg") == "retention: deleted what is past it" for l in b.logs()), 30,
             "the leader to apply the retention")
    wait_for(lambda: b.psql("SELECT count(*) FROM facts WHERE review_id = 'R-60'") == "0", 30,
             "the 60-day-old facts to go")
    events = b.psql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM events")
    check(events == "e15,e30", "events received over 20 days ago are gone, the rest kept", "e15,e30", events)
    reviews = b.psql("SELECT string_agg(review_id, ',' ORDER BY review_id) FROM reviews")
    check(reviews == "R-15,R-30", "with the reviews they carried", "R-15,R-30", reviews)
    facts = b.psql("SELECT string_agg(DISTINCT review_id, ',' ORDER BY review_id) FROM facts")
    check(facts == "R-15,R-2", "facts older than 20 days are gone, younger ones kept (also those of a "
          "deleted event)", "R-15,R-2", facts)
    attempts = b.psql("SELECT string_agg(attempt::text, ',') FROM delivery_attempts")
    check(attempts == "0", "the attempt recorded 30 hours ago is gone, the fresh one kept", "0", attempts)
    metrics = http("GET", b.url("/metrics"))[2].decode()
    check('sn_retention_deleted_total{table="events"} 2' in metrics, "counted in the metrics", None,
          [l for l in metrics.splitlines() if "retention" in l])
