"""The audit log: every call that reads review data or changes the
configuration is recorded (who by token id and role, never the token; what:
method, route, ids; the status; when), in order; GET /v1/audit and snctl
audit read it with filters; no route changes it, and the database refuses
UPDATE, DELETE and TRUNCATE (but for the retention path)."""
import calendar
import json
import os
import socket
import subprocess
import time

from harness import ROOT, SNCTL, Broker, check, http, wait_for
from ingest_util import event, review

RULES_DIR = os.path.join(ROOT, "deploy", "rules")


def started():
    b = Broker(env={"SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_WEBHOOK_TIMEOUT": "2s"}).start()
    b.wait_ready()
    return b


def call(b, token, method, path, body=None, content_type="application/json"):
    h = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        h["Content-Type"] = content_type
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
    st, headers, raw = http(method, b.url(path), body, h)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return st, doc


def closed_port():
    """A local port that refuses connections: a webhook target that fails."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def audit_entries(b, admin, query=""):
    """Every entry matching query, newest first, following next_cursor."""
    items, cursor = [], None
    while True:
        q = query + ("&" if query else "") + "limit=500" + ("&cursor=" + cursor if cursor else "")
        st, page = call(b, admin, "GET", "/v1/audit?" + q)
        check(st == 200, "GET /v1/audit?" + q, 200, (st, page))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def snctl(b, admin, *args):
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token", admin, "audit"] + list(args),
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def psql_error(b, sql):
    """psql's stderr, expecting sql to fail."""
    r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", b.conninfo(), "-c", sql],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0, "the database refuses: " + sql, "an error", r.stdout)
    return r.stderr


def test_every_audited_call_is_recorded_by_token_id_in_order():
    b = started()
    admin = b.read("admin.token").strip()
    admin_id = int(b.psql("SELECT id FROM tokens WHERE token_sha256 = sha256(convert_to('%s', 'UTF8'))" % admin))
    expected = []  # (who's token id, role, action, method, route, status, resource subset)
    began = time.time()

    def expect(token_id, role, action, method, route, status, resource=None):
        expected.append((token_id, role, action, method, route, status, resource or {}))

    # tokens, created through the API (token.create)
    made = {}
    for name, role, j in (("tn_emit", "emitter", "US-TN"), ("tn_sub", "subscriber", "US-TN"),
                          ("ga_sub", "subscriber", "US-GA")):
        st, t = call(b, admin, "POST", "/v1/tokens", {"role": role, "jurisdiction": j, "name": name})
        check(st == 201, "token created", 201, (st, t))
        made[name] = t
        expect(admin_id, "admin", "token.create", "POST", "/v1/tokens", 201,
               {"token_id": t["id"], "role": role, "jurisdiction": j})
    emit, tn_sub, ga_sub = made["tn_emit"], made["tn_sub"], made["ga_sub"]

    # review data written: one event, one of another jurisdiction, a batch
    ce = "application/cloudevents+json"
    st, _ = call(b, emit["token"], "POST", "/v1/events", event("US-TN", "ev-1", review("US-TN", "R-1")), ce)
    check(st == 202, "event accepted", 202, st)
    expect(emit["id"], "emitter", "events.submit", "POST", "/v1/events", 202,
           {"events": [{"index": 0, "source": "urn:npcs:jurisdiction:US-TN", "id": "ev-1",
                        "jurisdiction": "US-TN", "review_id": "R-1", "status": 202}]})
    st, _ = call(b, emit["token"], "POST", "/v1/events", event("US-GA", "ev-ga", review("US-GA", "G-1")), ce)
    check(st == 403, "another jurisdiction's event refused", 403, st)
    expect(emit["id"], "emitter", "events.submit", "POST", "/v1/events", 403,
           {"events": [{"index": 0, "source": "urn:npcs:jurisdiction:US-GA", "id": "ev-ga",
                        "jurisdiction": "US-GA", "review_id": "G-1", "status": 403}]})
    batch = [event("US-TN", "ev-2", review("US-TN", "R-2")), event("US-TN", "ev-1", review("US-TN", "R-1")),
             {"specversion": "1.0"}]
    st, doc = call(b, emit["token"], "POST", "/v1/events", batch, "application/cloudevents-batch+json")
    check(st == 207 and [r["status"] for r in doc["results"]] == [202, 200, 400], "a batch", None, (st, doc))
    expect(emit["id"], "emitter", "events.submit", "POST", "/v1/events", 207,
           {"events": [{"index": 0, "id": "ev-2", "review_id": "R-2", "status": 202},
                       {"index": 1, "id": "ev-1", "review_id": "R-1", "status": 200}]})

    # review data read: by its jurisdiction's subscriber, and tried by another's
    st, data = call(b, tn_sub["token"], "GET", "/v1/reviews/US-TN/R-1")
    check(st == 200 and data["review_id"] == "R-1", "TN's subscriber reads R-1", 200, st)
    expect(tn_sub["id"], "subscriber", "review.read", "GET", "/v1/reviews/{jurisdiction}/{review_id}", 200,
           {"jurisdiction": "US-TN", "review_id": "R-1"})
    st, _ = call(b, ga_sub["token"], "GET", "/v1/reviews/US-TN/R-1")
    check(st == 404, "GA's subscriber cannot", 404, st)
    expect(ga_sub["id"], "subscriber", "review.read", "GET", "/v1/reviews/{jurisdiction}/{review_id}", 404,
           {"jurisdiction": "US-TN", "review_id": "R-1"})

    # subscriptions: create, update, rotate-secret, test (its target refuses), delete
    target = "http://127.0.0.1:%d/hook" % closed_port()
    st, sub = call(b, tn_sub["token"], "POST", "/v1/subscriptions",
                   {"subscriber": "US-TN", "channel": "webhook", "target": target, "filter": ["severity=warning"]})
    check(st == 201, "subscription created", 201, (st, sub))
    sid = sub["id"]
    secrets = [sub["secret"]]
    sub_route = "/v1/subscriptions/{id}"
    expect(tn_sub["id"], "subscriber", "subscription.create", "POST", "/v1/subscriptions", 201,
           {"subscription_id": sid, "subscriber": "US-TN"})
    st, _ = call(b, emit["token"], "POST", "/v1/subscriptions",
                 {"subscriber": "US-TN", "channel": "webhook", "target": target})
    check(st == 403, "an emitter cannot subscribe", 403, st)
    expect(emit["id"], "emitter", "subscription.create", "POST", "/v1/subscriptions", 403)
    st, _ = call(b, tn_sub["token"], "PATCH", "/v1/subscriptions/%d" % sid, {"filter": ["severity=watch"]})
    check(st == 200, "subscription updated", 200, st)
    expect(tn_sub["id"], "subscriber", "subscription.update", "PATCH", sub_route, 200, {"subscription_id": sid})
    st, rotated = call(b, tn_sub["token"], "POST", "/v1/subscriptions/%d/rotate-secret" % sid)
    check(st == 200, "secret rotated", 200, st)
    secrets.append(rotated["secret"])
    expect(tn_sub["id"], "subscriber", "subscription.rotate_secret", "POST", sub_route + "/rotate-secret", 200,
           {"subscription_id": sid})
    st, _ = call(b, tn_sub["token"], "POST", "/v1/subscriptions/%d/test" % sid)
    check(st == 502, "the test event fails (nothing listens)", 502, st)
    expect(tn_sub["id"], "subscriber", "subscription.test", "POST", sub_route + "/test", 502,
           {"subscription_id": sid})
    st, _ = call(b, ga_sub["token"], "DELETE", "/v1/subscriptions/%d" % sid)
    check(st == 404, "GA cannot delete TN's subscription", 404, st)
    expect(ga_sub["id"], "subscriber", "subscription.delete", "DELETE", sub_route, 404, {"subscription_id": sid})
    st, _ = call(b, tn_sub["token"], "DELETE", "/v1/subscriptions/%d" % sid)
    check(st == 204, "subscription deleted", 204, st)
    expect(tn_sub["id"], "subscriber", "subscription.delete", "DELETE", sub_route, 204, {"subscription_id": sid})

    # silences, rules, deliveries (admin)
    st, silence = call(b, admin, "POST", "/v1/silences",
                       {"matchers": ["rule=x"], "duration": "1h", "comment": "FREE-TEXT-COMMENT"})
    check(st == 201, "silence created", 201, (st, silence))
    expect(admin_id, "admin", "silence.create", "POST", "/v1/silences", 201, {"silence_id": silence["id"]})
    st, _ = call(b, admin, "DELETE", "/v1/silences/%d" % silence["id"])
    check(st == 200, "silence expired", 200, st)
    expect(admin_id, "admin", "silence.expire", "DELETE", "/v1/silences/{id}", 200, {"silence_id": silence["id"]})
    st, _ = call(b, tn_sub["token"], "POST", "/v1/silences", {"matchers": ["rule=x"], "duration": "1h",
                                                               "comment": "c"})
    check(st == 403, "a subscriber cannot silence", 403, st)
    expect(tn_sub["id"], "subscriber", "silence.create", "POST", "/v1/silences", 403)
    st, _ = call(b, admin, "POST", "/v1/rules/reload")
    check(st == 200, "rules reloaded", 200, st)
    expect(admin_id, "admin", "rules.reload", "POST", "/v1/rules/reload", 200)
    files = {}
    for name in sorted(os.listdir(RULES_DIR)):
        with open(os.path.join(RULES_DIR, name)) as f:
            files[name] = json.load(f)
    st, _ = call(b, admin, "POST", "/v1/rules/backtest", {"files": files})
    check(st == 200, "backtest", 200, st)
    expect(admin_id, "admin", "rules.backtest", "POST", "/v1/rules/backtest", 200)
    st, _ = call(b, admin, "POST", "/v1/deliveries/999999/retry")
    check(st == 404, "no such delivery", 404, st)
    expect(admin_id, "admin", "delivery.retry", "POST", "/v1/deliveries/{id}/retry", 404, {"delivery_id": 999999})

    # tokens: an emitter may not create one; the admin revokes one
    st, _ = call(b, emit["token"], "POST", "/v1/tokens", {"role": "admin"})
    check(st == 403, "an emitter cannot create tokens", 403, st)
    expect(emit["id"], "emitter", "token.create", "POST", "/v1/tokens", 403)
    st, _ = call(b, admin, "DELETE", "/v1/tokens/%d" % ga_sub["id"])
    check(st == 204, "token revoked", 204, st)
    expect(admin_id, "admin", "token.revoke", "DELETE", "/v1/tokens/{id}", 204, {"token_id": ga_sub["id"]})

    # not audited: reads of notices and configuration, and calls without a valid token
    for token, method, path in ((admin, "GET", "/v1/notices"), (admin, "GET", "/v1/tokens"),
                                (tn_sub["token"], "GET", "/v1/subscriptions"), (admin, "GET", "/v1/rules"),
                                (None, "GET", "/v1/reviews/US-TN/R-1"), ("sn_" + "A" * 43, "POST", "/v1/tokens")):
        call(b, token, method, path)
    ended = time.time()

    entries = wait_for(lambda: (lambda e: e if len(e) >= len(expected) else None)(
        [e for e in audit_entries(b, admin) if e["action"] != "audit.read"]), 10, "the audit entries")
    oldest_first = list(reversed(entries))
    check(len(oldest_first) == len(expected), "one entry per audited call, no others", len(expected),
          [(e["action"], e["status"]) for e in oldest_first])
    check([e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True), "newest first")
    for n, (e, want) in enumerate(zip(oldest_first, expected)):
        token_id, role, action, method, route, status, resource = want
        got = (e["token_id"], e["role"], e["action"], e["method"], e["route"], e["status"])
        check(got == (token_id, role, action, method, route, status), "entry %d" % n,
              (token_id, role, action, method, route, status), got)
        check(e["who"] == "token:%d" % token_id, "who is the token id", "token:%d" % token_id, e["who"])
        check(e["peer"] == "127.0.0.1", "the client's address", "127.0.0.1", e["peer"])
        for key, value in resource.items():
            if key == "events":
                check(len(e["resource"]["events"]) == len(value), "entry %d: the events" % n, value,
                      e["resource"]["events"])
                for got_ev, want_ev in zip(e["resource"]["events"], value):
                    check(all(got_ev.get(k) == v for k, v in want_ev.items()), "entry %d: an event" % n,
                          want_ev, got_ev)
            else:
                check(e["resource"].get(key) == value, "entry %d: resource %s" % (n, key), value, e["resource"])
    jurisdictions = [(e["role"], e["jurisdiction"]) for e in oldest_first]
    check(all((r == "admin") == (j is None) for r, j in jurisdictions), "the caller's jurisdiction, none for admin",
          None, jurisdictions)
    times = [e["at"] for e in oldest_first]
    check(times == sorted(times), "in the order the calls were made", sorted(times), times)
    first = calendar.timegm(time.strptime(times[0][:19], "%Y-%m-%dT%H:%M:%S"))
    check(began - 2 <= first <= ended + 2 and len(times[0]) == 24 and times[0].endswith("Z"),
          "at: when the call was made, UTC, to the millisecond", (began, ended), times[0])

    # never the token, a secret, a body or free text, anywhere in the table
    table = b.psql("SELECT audit_log::text FROM audit_log")
    for secret in [admin, emit["token"], tn_sub["token"], ga_sub["token"]] + secrets + \
                  ["Private notes", "FREE-TEXT-COMMENT", "whsec_", target, "sn_"]:
        check(secret not in table, "the audit log never holds %r" % secret[:12])

    # reading the audit log is audited too, and only an admin may
    st, _ = call(b, tn_sub["token"], "GET", "/v1/audit")
    check(st == 403, "a subscriber cannot read the audit log", 403, st)
    reads = wait_for(lambda: (lambda e: e if any(x["status"] == 403 for x in e) else None)(
        audit_entries(b, admin, "action=audit.read")), 10, "the audit.read entries")
    check(any(x["status"] == 403 and x["token_id"] == tn_sub["id"] for x in reads) and
          all(x["route"] == "/v1/audit" for x in reads), "audit.read entries", None, reads)

    # filters
    def actions(query):
        return [(e["action"], e["status"]) for e in audit_entries(b, admin, query) if e["action"] != "audit.read"]
    check(actions("action=review.read") == [("review.read", 404), ("review.read", 200)], "by action",
          None, actions("action=review.read"))
    check([a for a, _ in actions("action=subscription")] ==
          ["subscription.delete"] * 2 + ["subscription.test", "subscription.rotate_secret",
                                         "subscription.update", "subscription.create", "subscription.create"],
          "by kind of action", None, actions("action=subscription"))
    check(actions("token=%d" % ga_sub["id"]) == [("subscription.delete", 404), ("review.read", 404)],
          "by token", None, actions("token=%d" % ga_sub["id"]))
    check(actions("who=token:%d" % ga_sub["id"]) == actions("token=%d" % ga_sub["id"]), "by who")
    check(actions("review=R-1") == [("review.read", 404), ("review.read", 200), ("events.submit", 207),
                                    ("events.submit", 202)], "by review id", None, actions("review=R-1"))
    check(actions("since=2999-01-01") == [] and actions("until=2000-01-01") == [], "since and until")
    check(len(actions("since=2000-01-01&until=2999-01-01")) == len(expected), "a range holding them all")
    st, page = call(b, admin, "GET", "/v1/audit?limit=2&action=token")
    st2, page2 = call(b, admin, "GET", "/v1/audit?limit=2&action=token&cursor=" + page["next_cursor"])
    tokens = [e["id"] for e in audit_entries(b, admin, "action=token")]
    check([e["id"] for e in page["items"] + page2["items"]] == tokens[:4], "pages follow each other", tokens[:4],
          page["items"] + page2["items"])
    for bad in ("limit=0", "limit=501", "since=yesterday", "until=2026-13-01", "token=abc", "token=0",
                "action=Review", "cursor=x", "bogus=1", "action=a&action=b"):
        st, doc = call(b, admin, "GET", "/v1/audit?" + bad)
        check(st == 400 and doc["errors"][0]["parameter"] == bad.split("=")[0], "400 for " + bad, 400, (st, doc))

    # entries cannot be changed through the API
    for method, path in (("PUT", "/v1/audit"), ("PATCH", "/v1/audit"), ("DELETE", "/v1/audit"),
                         ("POST", "/v1/audit")):
        st, _ = call(b, admin, method, path, {} if method != "DELETE" else None)
        check(st == 405, "%s %s: no such method" % (method, path), 405, st)
    first_id = oldest_first[0]["id"]
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        st, _ = call(b, admin, method, "/v1/audit/%d" % first_id, {} if method in ("PUT", "PATCH") else None)
        check(st == 404, "%s /v1/audit/ID: no such route" % method, 404, st)

    # nor in the database: UPDATE, DELETE and TRUNCATE are refused
    for sql in ("UPDATE audit_log SET status = 200 WHERE id = %d" % first_id,
                "DELETE FROM audit_log WHERE id = %d" % first_id, "TRUNCATE audit_log"):
        err = psql_error(b, sql)
        check("append-only" in err, "refused as append-only", "append-only", err)
    # the retention path: a transaction that sets sn.audit_retention may delete
    # older rows, and only those
    err = psql_error(b, "BEGIN; SET LOCAL sn.audit_retention = '1 day'; "
                        "DELETE FROM audit_log WHERE id = %d; COMMIT" % first_id)
    check("append-only" in err, "a young row stays", "append-only", err)
    b.psql("INSERT INTO audit_log (at, who, method, route, action, status) "
           "VALUES (now() - interval '3 days', 'token:0', 'GET', '/old', 'review.read', 200)")
    b.psql("BEGIN; SET LOCAL sn.audit_retention = '2 days'; "
           "DELETE FROM audit_log WHERE at < now() - interval '2 days'; COMMIT")
    left = b.psql("SELECT count(*) FROM audit_log WHERE route = '/old'")
    check(left == "0", "an entry past the retention is deleted", "0", left)
    check(b.psql("SELECT count(*) FROM audit_log WHERE id = %d" % first_id) == "1", "the first entry is still there")

    # snctl audit
    rc, out, err = snctl(b, admin, "--action", "review.read")
    lines = out.splitlines()
    check(rc == 0 and lines[0].split()[:4] == ["ID", "AT", "WHO", "ROLE"] and len(lines) == 3,
          "snctl audit --action: a header and two rows", 3, (rc, out, err))
    check("token:%d" % ga_sub["id"] in lines[1] and "subscriber/US-GA" in lines[1] and " 404 " in lines[1] and
          "GET /v1/reviews/{jurisdiction}/{review_id}" in lines[1] and '"review_id":"R-1"' in lines[1],
          "the newest first: GA's try", None, lines[1])
    check("token:%d" % tn_sub["id"] in lines[2] and " 200 " in lines[2], "then TN's read", None, lines[2])
    rc, out, err = snctl(b, admin, "--token", str(emit["id"]), "--json")
    rows = [json.loads(l) for l in out.splitlines()]
    check(rc == 0 and [r["action"] for r in rows] ==
          ["token.create", "subscription.create", "events.submit", "events.submit", "events.submit"] and
          all(r["who"] == "token:%d" % emit["id"] for r in rows), "snctl audit --token --json", None, rows)
    rc, out, _ = snctl(b, admin, "--since", time.strftime("%Y-%m-%d", time.gmtime(began - 86400)), "--limit", "3")
    check(rc == 0 and len(out.splitlines()) == 4, "snctl audit --since --limit 3: three rows", 4, out)
    rc, out, err = snctl(b, tn_sub["token"])
    check(rc == 1 and "403" in err, "snctl audit with a subscriber token: 403", 1, (rc, err))
    rc, _, _ = snctl(b, admin, "extra")
    check(rc == 2, "snctl audit with an argument: usage", 2, rc)

    # written entries are counted
    st, _, raw = http("GET", b.url("/metrics"))
    written = [l for l in raw.decode().splitlines() if l.startswith('sn_audit_entries_total{outcome="written"}')]
    check(written and float(written[0].split()[-1]) >= len(expected), "sn_audit_entries_total", None, written)
    check(b.stop() == 0, "clean stop")
