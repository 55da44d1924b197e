"""Ingestion over HTTP: every reply code, tokens and jurisdictions, amended
reviews, durability across kill -9, idempotency under concurrency."""
import concurrent.futures
import hashlib
import json
import os
import signal
import subprocess
import time

from harness import SNCTL, Broker, check, http, wait_for
from ingest_util import (KeepAlive, binary_headers, create_token, event, post, review)


def started(**kw):
    b = Broker(**kw).start()
    b.wait_ready()
    return b


def test_accepted_duplicate_conflict():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    ev = event("US-TN", "ev-1")
    status, _, body = post(b, tn, ev)
    check(status == 202 and body["outcome"] == "accepted", "first submission is 202 accepted", 202, (status, body))
    check(b.psql("SELECT count(*) FROM events WHERE event_id = 'ev-1'") == "1", "the event is stored")
    status, _, body = post(b, tn, ev)
    check(status == 200 and body["outcome"] == "duplicate", "same (source, id, content) is 200 duplicate",
          200, (status, body))
    changed = event("US-TN", "ev-1", review("US-TN", finalized_at="2026-03-02T10:00:00Z"))
    status, headers, body = post(b, tn, changed)
    check(status == 409 and headers["Content-Type"] == "application/problem+json",
          "same (source, id), other content: 409 problem", 409, (status, body))
    check(body["title"] == "Conflict" and body["status"] == 409, "problem document", None, body)
    check(b.psql("SELECT count(*) FROM events") == "1", "nothing new stored for the duplicate or conflict")
    # binary mode of the same event is the same content: a duplicate
    status, _, body = post(b, tn, json.dumps(ev["data"]), "application/json", binary_headers(ev))
    check(status == 200 and body["outcome"] == "duplicate", "binary mode of the same event is a duplicate",
          200, (status, body))


def test_binary_mode_with_percent_encoded_headers():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    ev = event("US-TN", "ev bin/1 ü", review("US-TN", "R-BIN"))
    headers = binary_headers(ev)
    check("%20" in headers["ce-id"] and "%3A" in headers["ce-source"], "headers are percent-encoded")
    status, _, body = post(b, tn, json.dumps(ev["data"]), "application/json", headers)
    check(status == 202 and body["id"] == "ev bin/1 ü", "binary mode accepted and decoded", 202, (status, body))
    stored = b.psql("SELECT envelope->>'source' || '|' || (envelope->'data'->>'review_id') FROM events")
    check(stored == "urn:npcs:jurisdiction:US-TN|R-BIN", "stored as a structured envelope", None, stored)
    status, _, body = post(b, tn, json.dumps(ev["data"]), "application/json", {"ce-id": "x"})
    check(status == 400 and body["errors"][0]["pointer"] == "/specversion",
          "binary mode without ce-specversion is 400 naming it", 400, (status, body))


def test_bad_requests_name_what_is_wrong():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    status, _, body = post(b, tn, "{not json")
    check(status == 400 and "line 1" in body["detail"], "malformed JSON: 400 with position", 400, (status, body))
    ev = event("US-TN", "ev-2")
    del ev["id"]
    ev["specversion"] = "0.3"
    status, _, body = post(b, tn, ev)
    pointers = sorted(e["pointer"] for e in body.get("errors", []))
    check(status == 400 and pointers == ["/id", "/specversion"],
          "envelope errors: 400 naming each attribute", (400, ["/id", "/specversion"]), (status, body))
    data = review("US-TN", "R-2")
    data["incident"]["child_age_band"] = "0-4"
    data["improvement_opportunities"][0]["theme"] = "not_a_theme"
    data["improvement_opportunities"][1]["summary"] = "x" * 4001
    del data["family_needs"]
    status, _, body = post(b, tn, event("US-TN", "ev-3", data))
    pointers = sorted(e["pointer"] for e in body.get("errors", []))
    want = ["/data/family_needs", "/data/improvement_opportunities/0/theme",
            "/data/improvement_opportunities/1/summary", "/data/incident/child_age_band"]
    check(status == 422 and pointers == want, "422 lists every violation with its pointer",
          (422, want), (status, body))
    check(all(e["message"] for e in body["errors"]), "each violation has a sentence", None, body)
    status, _, body = post(b, tn, event("US-TN", "ev-4", review("US-GA", "R-4")))
    check(status == 422 and body["errors"][0]["pointer"] == "/data/jurisdiction",
          "data.jurisdiction must match source", 422, (status, body))
    status, _, body = post(b, tn, event("US-TN", "ev-5"), content_type="text/plain")
    check(status == 415 and body["status"] == 415, "other content type: 415", 415, (status, body))
    check(b.psql("SELECT count(*) FROM events") == "0", "nothing refused was stored")


def test_body_limit_413():
    b = started(env={"SN_HTTP_MAX_BODY_SIZE": "64KiB"})
    tn = create_token(b, "emitter", "US-TN")
    ev = event("US-TN", "ev-big")
    ev["data"]["improvement_opportunities"] = [
        dict(ev["data"]["improvement_opportunities"][0], summary="y" * 3000) for _ in range(30)]
    status, _, body = post(b, tn, ev)
    check(status == 413 and "65536" in body["detail"], "over http.max_body_size: 413", 413, (status, body))
    status, _, _ = post(b, tn, event("US-TN", "ev-small"))
    check(status == 202, "a small event still passes", 202, status)


def test_tokens_auth_and_jurisdictions():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    ga = create_token(b, "emitter", "US-GA")
    ga_reader = create_token(b, "subscriber", "US-GA")
    tn_reader = create_token(b, "subscriber", "US-TN")
    admin = b.read("admin.token").strip()

    status, headers, body = post(b, None, event("US-TN", "e1"))
    check(status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""), "no token: 401", 401, status)
    status, _, _ = post(b, "sn_" + "A" * 43, event("US-TN", "e1"))
    check(status == 401, "unknown token: 401", 401, status)
    status, _, body = post(b, ga, event("US-TN", "e1"))
    check(status == 403 and "US-GA" in body["detail"], "GA's token cannot submit TN's review", 403, (status, body))
    status, _, _ = post(b, tn_reader, event("US-TN", "e1"))
    check(status == 403, "a subscriber token cannot submit", 403, status)
    check(post(b, tn, event("US-TN", "e1"))[0] == 202, "TN's token submits TN's review")
    check(post(b, admin, event("US-GA", "e2", review("US-GA", "G-1")))[0] == 202, "admin may submit any")

    def get(token, path):
        status, _, raw = http("GET", b.url(path), headers={"Authorization": "Bearer " + token})
        return status, json.loads(raw)
    status, data = get(tn, "/v1/reviews/US-TN/R-1")
    check(status == 200 and data["review_id"] == "R-1" and "Private notes" in json.dumps(data),
          "the owner reads its review, free text included", 200, (status, data))
    check(get(tn_reader, "/v1/reviews/US-TN/R-1")[0] == 200, "the owner's subscriber token reads it")
    check(get(admin, "/v1/reviews/US-TN/R-1")[0] == 200, "admin reads it")
    other = get(ga_reader, "/v1/reviews/US-TN/R-1")
    missing = get(ga_reader, "/v1/reviews/US-GA/NOPE")
    check(other == missing and other[0] == 404,
          "another jurisdiction gets the same 404 as for a review that does not exist", missing, other)
    check(get(ga, "/v1/reviews/US-TN/R-1")[0] == 404, "GA's emitter cannot read TN's review")

    # revocation works at once, through snctl
    listing = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token", admin, "token", "list"],
                             capture_output=True, text=True, timeout=30)
    check(listing.returncode == 0 and "US-GA" in listing.stdout and ga not in listing.stdout,
          "snctl token list shows tokens but never their text", None, listing.stdout)
    ga_id = [l.split()[0] for l in listing.stdout.splitlines() if " emitter " in l and "US-GA" in l][0]
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token", admin, "token", "revoke", ga_id],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "snctl token revoke", 0, (r.returncode, r.stderr))
    status, _, _ = post(b, ga, event("US-GA", "e3", review("US-GA", "G-3")))
    check(status == 401, "the revoked token is refused as soon as the revocation is answered", 401, status)

    # a token another process created a moment ago (its NOTIFY not yet here:
    # this row is written without one) is looked up before it is refused
    fresh = "sn_" + "F" * 43
    b.psql("INSERT INTO tokens (role, jurisdiction, name, token_sha256) VALUES "
           "('emitter', 'US-GA', 'fresh', sha256(convert_to('%s', 'UTF8')))" % fresh)
    status, _, body = post(b, fresh, event("US-GA", "e4", review("US-GA", "G-4")))
    check(status == 202, "a token created elsewhere works at once", 202, (status, body))
    b.psql("UPDATE tokens SET revoked_at = now() WHERE name = 'fresh'")
    b.psql("SELECT pg_notify('sn_tokens', 'revoked')")
    wait_for(lambda: post(b, fresh, event("US-GA", "e5", review("US-GA", "G-5")))[0] == 401, 5,
             "a token revoked elsewhere to stop working once its NOTIFY is here")
    # made-up tokens cost at most 100 database look-ups at once, then 50 a second
    def lookups():
        metrics = http("GET", b.url("/metrics"))[2].decode()
        return {o: float(next((l.split()[-1] for l in metrics.splitlines()
                               if l.startswith('sn_auth_lookups_total{outcome="%s"}' % o)), "0"))
                for o in ("unknown", "skipped")}
    before, started_at = lookups(), time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(lambda i: post(b, "sn_bogus%04d" % i, event("US-GA", "e6"))[0], range(400)))
    elapsed = time.time() - started_at
    after = lookups()
    looked, skipped = after["unknown"] - before["unknown"], after["skipped"] - before["skipped"]
    check(statuses == {401}, "every made-up token is refused", {401}, statuses)
    check(looked + skipped == 400 and looked <= 100 + 50 * elapsed + 5,
          "past the burst a made-up token is refused without a look-up", "<= %d looked up" % (100 + 50 * elapsed),
          (looked, skipped, elapsed))
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token", tn, "token", "list"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "403" in r.stderr, "an emitter cannot list tokens", 1, (r.returncode, r.stderr))
    stored = b.psql("SELECT count(*) FROM tokens WHERE token_sha256 = sha256(convert_to('%s', 'UTF8'))" % tn)
    check(stored == "1", "tokens are stored as their SHA-256", "1", stored)


def test_amended_review_replaces_the_earlier_version():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    check(post(b, tn, event("US-TN", "v1", review("US-TN", "R-9")))[0] == 202, "first version")
    amended = review("US-TN", "R-9", finalized_at="2026-03-05T09:00:00Z",
                     improvement_opportunities=[{"theme": "workload", "seips_domain": "organization",
                                                 "priority": "low"}], family_needs=[])
    check(post(b, tn, event("US-TN", "v2", amended))[0] == 202, "amendment under a new event id")
    status, _, raw = http("GET", b.url("/v1/reviews/US-TN/R-9"), headers={"Authorization": "Bearer " + tn})
    data = json.loads(raw)
    check(data["improvement_opportunities"][0]["theme"] == "workload", "the review reads as amended", None, data)
    live = b.psql("SELECT string_agg(coalesce(theme, need), ',') FROM facts WHERE review_id = 'R-9' AND retracted_at IS NULL")
    retracted = b.psql("SELECT count(*) FROM facts WHERE review_id = 'R-9' AND retracted_at IS NOT NULL")
    check(live == "workload" and retracted == "4", "old facts retracted, new ones live", ("workload", "4"), (live, retracted))
    check(b.psql("SELECT version FROM reviews WHERE review_id = 'R-9'") == "2", "version 2")


def test_facts_carry_labels_never_free_text():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    check(post(b, tn, event("US-TN", "f1", review("US-TN", "R-F")))[0] == 202, "stored")
    rows = b.psql("SELECT kind || ':' || coalesce(theme, need) || ':' || coalesce(partner, '-') || ':' || cause || ':' || age_band "
                  "FROM facts ORDER BY id").splitlines()
    want = ["improvement_opportunity:teamwork_coordination:law_enforcement:suid:0-3",
            "improvement_opportunity:economic_support:-:suid:0-3",
            "family_need:economic_support:-:suid:0-3", "family_need:housing:-:suid:0-3"]
    check(rows == want, "one fact per IO and per family need, with labels", want, rows)
    dump = b.psql("SELECT string_agg(f::text, ' ') FROM facts f")
    check("Private notes" not in dump, "no free text in facts")


def test_batch_mode_answers_each_item():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    post(b, tn, event("US-TN", "b0", review("US-TN", "B-0")))
    bad = event("US-TN", "b2", review("US-TN", "B-2"))
    bad["data"]["incident"]["type"] = "accident"
    batch = [event("US-TN", "b0", review("US-TN", "B-0")), event("US-TN", "b1", review("US-TN", "B-1")),
             bad, event("US-GA", "b3", review("US-GA", "B-3")), {"not": "an event"}]
    status, _, body = post(b, tn, batch, "application/cloudevents-batch+json")
    got = [r["status"] for r in body["results"]]
    check(status == 207 and got == [200, 202, 422, 403, 400], "per-item results",
          [200, 202, 422, 403, 400], (status, got))
    check([r["index"] for r in body["results"]] == [0, 1, 2, 3, 4], "results in order, indexed")
    check(b.psql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM events") == "b0,b1",
          "only the good items are stored")
    status, _, body = post(b, tn, {"not": "an array"}, "application/cloudevents-batch+json")
    check(status == 400, "a batch that is not an array: 400", 400, status)


def test_long_multibyte_id_and_versions_inside_one_batch():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    long_id = "é" * 128  # 128 characters, 256 bytes: at the schema's limit
    status, _, body = post(b, tn, event("US-TN", long_id, review("US-TN", "L-1")))
    check(status == 202 and body["id"] == long_id, "a 128-character multi-byte id is kept whole",
          202, (status, body))
    check(b.psql("SELECT length(event_id) FROM events") == "128", "stored whole")
    v2 = review("US-TN", "L-2", improvement_opportunities=[
        {"theme": "training", "seips_domain": "person", "priority": "low"}], family_needs=[])
    batch = [event("US-TN", "l2-v1", review("US-TN", "L-2")), event("US-TN", "l2-v2", v2),
             event("US-TN", "l2-v1", review("US-TN", "L-2"))]
    status, _, body = post(b, tn, batch, "application/cloudevents-batch+json")
    got = [(r["status"], r.get("outcome")) for r in body["results"]]
    want = [(202, "accepted"), (202, "accepted"), (200, "duplicate")]
    check(got == want, "two versions and a repeat in one batch", want, got)
    check(b.psql("SELECT version FROM reviews WHERE review_id = 'L-2'") == "2", "both versions counted")
    live = b.psql("SELECT string_agg(coalesce(theme, need), ',') FROM facts "
                  "WHERE review_id = 'L-2' AND retracted_at IS NULL")
    check(live == "training", "the later version's facts are the live ones", "training", live)


def test_kill9_right_after_202_keeps_the_event():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    status, _, _ = post(b, tn, event("US-TN", "durable-1", review("US-TN", "D-1")))
    check(status == 202, "accepted", 202, status)
    b.kill9()
    b.start()
    b.wait_ready(20)
    check(b.psql("SELECT count(*) FROM events WHERE event_id = 'durable-1'") == "1",
          "an acknowledged event survives kill -9")
    status, _, _ = post(b, tn, event("US-TN", "durable-1", review("US-TN", "D-1")))
    check(status == 200, "and is a duplicate after the restart", 200, status)


def test_503_with_retry_after_while_the_database_is_down():
    a = started(name="pg-provider")
    a.psql("CREATE DATABASE ext")
    ext = Broker(embedded=False, name="external", env={
        "SN_DATABASE_URL": a.conninfo("ext"),
        "SN_KAFKA_BOOTSTRAP_SERVERS": a.read("kafka.bootstrap").strip(),
        "SN_DATABASE_RECONNECT_MAX": "500ms"}).start()
    ext.wait_ready(20)
    admin = a.read("admin.token").strip()  # valid for a, not for ext: ext has its own database
    status, _, raw = http("POST", ext.url("/v1/events"), b"{}", {"Authorization": "Bearer " + admin,
                                                                "Content-Type": "application/cloudevents+json"})
    check(status == 401, "the external broker's database has its own tokens", 401, status)
    # create a token directly in the external database
    token = "sn_" + "t" * 43
    a.psql("INSERT INTO tokens (role, jurisdiction, token_sha256) VALUES ('emitter', 'US-TN', "
           "decode('%s', 'hex')); NOTIFY sn_tokens" % hashlib.sha256(token.encode()).hexdigest(), dbname="ext")
    wait_for(lambda: post(ext, token, event("US-TN", "w-0"))[0] == 202, 10, "the new token to work")
    pid = int(open(os.path.join(a.pg_root, "data", "postmaster.pid")).readline())
    os.kill(pid, signal.SIGINT)

    seen = {}

    def down():
        status, headers, body = post(ext, token, event("US-TN", "w-1", review("US-TN", "W-1")))
        seen["reply"] = (status, headers.get("Retry-After"), body)
        return status == 503
    wait_for(down, 10, "a 503 while the database is down", interval=0.02)
    check(seen["reply"][1] == "1" and seen["reply"][2]["status"] == 503,
          "503 carries Retry-After and a problem document", None, seen["reply"])
    wait_for(lambda: post(ext, token, event("US-TN", "w-1", review("US-TN", "W-1")))[0] in (200, 202), 30,
             "the retried event to be accepted once the database is back")
    check(a.psql("SELECT count(*) FROM events WHERE event_id = 'w-1'", dbname="ext") == "1",
          "stored exactly once")


def test_a_hung_database_gives_503_not_a_hang_and_the_broker_reconnects():
    b = started(env={"SN_DATABASE_QUERY_TIMEOUT": "1s"})
    tn = create_token(b, "emitter", "US-TN")
    backend = int(b.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'sn-broker'"))
    os.kill(backend, signal.SIGSTOP)  # alive but silent
    try:
        started_at = time.monotonic()
        status, headers, body = post(b, tn, event("US-TN", "h-1", review("US-TN", "H-1")))
        secs = time.monotonic() - started_at
        check(status == 503 and headers.get("Retry-After") == "1", "503 while the database hangs",
              503, (status, body))
        check(secs < 5, "answered within the query timeout, not hung", "< 5 s", secs)
        wait_for(lambda: post(b, tn, event("US-TN", "h-1", review("US-TN", "H-1")))[0] in (200, 202),
                 20, "a new connection to take the retried event")
    finally:
        os.kill(backend, signal.SIGCONT)
    check(b.psql("SELECT count(*) FROM events WHERE event_id = 'h-1'") == "1", "stored once")
    check(any("no answer to a query within 1000 ms" in l.get("detail", "") for l in b.logs()),
          "the log says why the connection was dropped")


def test_1000_events_sent_twice_concurrently_are_stored_once():
    b = started()
    tn = create_token(b, "emitter", "US-TN")
    events = [event("US-TN", "c-%d" % i, review("US-TN", "C-%d" % i)) for i in range(1000)]
    work = events + events
    statuses = []

    def worker(chunk):
        conn = KeepAlive(b.address, tn)
        return [conn.post(ev) for ev in chunk]
    chunks = [work[i::32] for i in range(32)]  # each event twice, in different connections
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for result in pool.map(worker, chunks):
            statuses.extend(result)
    accepted = statuses.count(202)
    duplicate = statuses.count(200)
    check(accepted == 1000 and duplicate == 1000 and len(statuses) == 2000,
          "each event accepted once and a duplicate once", (1000, 1000), (accepted, duplicate, len(statuses)))
    check(b.psql("SELECT count(*) FROM events") == "1000", "1000 events stored")
    check(b.psql("SELECT count(DISTINCT (source, event_id)) FROM events") == "1000", "no duplicate rows")
    check(b.psql("SELECT count(*) FROM facts") == "4000", "four facts each")
    status, _, raw = http("GET", b.url("/metrics"))
    txns = [l for l in raw.decode().splitlines() if l.startswith("sn_ingest_transactions_total")]
    n = float(txns[0].split()[-1])
    print("    2000 requests stored in %d transactions (group commit)" % n)
    check(n < 2000, "concurrent requests share transactions (group commit)", "< 2000", n)
