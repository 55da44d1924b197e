"""Delivery through the real binary to real receivers: webhooks verified by
the official Standard Webhooks implementation (npm `standardwebhooks`), email
received by a real SMTP server over STARTTLS with AUTH and parsed as MIME,
Kafka consumed with kcat and checked against the schema by ajv; retries with
growing delays, Retry-After, 410 Gone, dead letters that do not delay a
healthy receiver, kill -9 mid-dispatch, the Kafka cluster down then up, and
silences."""
import json
import os
import re
import subprocess
import time

from delivery_util import KafkaMock, SmtpReceiver, WebhookReceiver, kcat_consume, wait_count
from harness import ROOT, Broker, api, check, http, wait_for
from ingest_util import create_token, event, post, review

DAY = 86400
T0 = 1767268800  # 2026-01-01T12:00:00Z
TEAMWORK = "teamwork-law-enforcement"
TEAMWORK_TOPIC = "notices.teamwork_coordination.law_enforcement"
SCHEMAS = os.path.join(ROOT, "schemas")
AJV = os.path.join(ROOT, "tests", "schema", "ajv-check.mjs")
BASE_ENV = {"SN_RULES_TICK": "0s", "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "SN_WEBHOOK_TIMEOUT": "2s", "SN_DELIVERY_RETRY_SCHEDULE": "300ms,600ms,1200ms"}


def started(env=None, **kw):
    e = dict(BASE_ENV)
    e.update(env or {})
    b = Broker(env=e, **kw).start()
    b.wait_ready()
    return b


def subscribe(b, target, filter, channel="webhook", subscriber="US-TN", token=None):
    st, sub = api(b, "/v1/subscriptions", "POST", {"subscriber": subscriber, "channel": channel,
                                                     "target": target, "filter": filter}, token)
    check(st == 201, "subscription created", 201, (st, sub))
    return sub


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def teamwork_review(j, rid, t, with_teamwork=True):
    ios = [{"theme": "assessment", "seips_domain": "tasks", "priority": "medium"}]
    if with_teamwork:
        ios.insert(0, {"theme": "teamwork_coordination", "partner": "law_enforcement",
                       "seips_domain": "organization", "priority": "high",
                       "summary": "CANARY-%s details of the case" % rid})
    return review(j, rid, finalized_at=iso(t), improvement_opportunities=ios, family_needs=[])


JURIS = ["US-TN", "US-TN", "US-MN", "US-MN", "US-CA", "US-CA", "US-GA", "US-GA", "US-OK", "US-OK"]


def send_teamwork(b, count=10, start=0, prefix="R"):
    """The fixed data set of 07-rules: issued at the 5th review, escalated at
    the 10th; an amendment of the 10th then a late review give an update."""
    admin = b.read("admin.token").strip()
    for i in range(start, start + count):
        j = JURIS[i % len(JURIS)]
        st, _, body = post(b, admin, event(j, "%s-ev-%d" % (prefix, i),
                                           teamwork_review(j, "%s-%d" % (prefix, i), T0 + i * DAY)))
        check(st == 202, "review %d accepted" % i, 202, (st, body))


def finish_teamwork(b):
    admin = b.read("admin.token").strip()
    post(b, admin, event("US-OK", "ev-9b", teamwork_review("US-OK", "R-9", T0 + 10 * DAY, False)))
    post(b, admin, event("US-TN", "ev-late", review(
        "US-TN", "R-late", finalized_at=iso(T0 + 20 * DAY),
        improvement_opportunities=[{"theme": "workload", "seips_domain": "tasks", "priority": "low"}],
        family_needs=[])))


def revisions(b, rule=None):
    rows = b.psql("SELECT body::text FROM notice_revisions ORDER BY notice_id, revision")
    revs = [json.loads(l) for l in rows.splitlines() if l]
    return [r for r in revs if rule is None or r["rule"] == rule]


def caught_up(b):
    return b.psql("SELECT (SELECT last_fact_id FROM engine_state) = "
                  "(SELECT coalesce(max(id), 0) FROM facts)") == "t"


def matches(filter, rev):
    """The filter semantics, written independently of the broker: labels are
    the group, severity, rule, status, and jurisdiction = any named one."""
    labels = dict(rev["group"])
    labels.update({"severity": rev["severity"], "rule": rev["rule"], "status": rev["status"]})
    for m in filter:
        name, op, value = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$", m).groups()
        values = rev["jurisdictions"] if name == "jurisdiction" else [labels.get(name, "")]
        values = values or [""]
        hit = any(v == value if op in ("=", "!=") else re.fullmatch(value, v) for v in values)
        if hit != (op in ("=", "=~")):
            return False
    return True


def delivered_events(rx, path):
    return [(r, json.loads(r["body"])) for r in rx.requests(path)]


def test_every_channel_delivers_what_matches():
    import tempfile
    d = tempfile.mkdtemp(prefix="delivery-")
    rx = WebhookReceiver(d)
    smtp = SmtpReceiver(d)
    b = started(env=smtp.env())
    sub_a = subscribe(b, rx.url("/a"), ["rule=" + TEAMWORK, "severity=~advisory|warning"])
    sub_b = subscribe(b, rx.url("/b"), ["theme=assessment"], subscriber="US-MN")
    sub_j = subscribe(b, rx.url("/j"), ["jurisdiction=US-GA", "status!=issued"], subscriber="US-GA")
    sub_mail = subscribe(b, "agency.lead@example.org", ["jurisdiction=US-TN"], channel="email")
    check(sub_a["secret"].startswith("whsec_") and "secret" not in sub_mail, "webhooks get a secret, shown once")
    for path, sub in (("/a", sub_a), ("/b", sub_b), ("/j", sub_j)):
        rx.config(path, [sub["secret"]])
    st, listing = api(b, "/v1/subscriptions")
    check(st == 200 and len(listing["items"]) == 4 and not any("secret" in s for s in listing["items"]),
          "the list never shows a secret", None, listing)

    send_teamwork(b)
    finish_teamwork(b)
    wait_for(lambda: caught_up(b), 20, "the engine to evaluate every fact")
    revs = revisions(b)
    check(len(revisions(b, TEAMWORK)) == 3, "three teamwork revisions", 3, len(revs))

    # each webhook subscription gets exactly the revisions its filter matches
    for path, sub in (("/a", sub_a), ("/b", sub_b), ("/j", sub_j)):
        want = sorted((r["id"], r["revision"]) for r in revs if matches(sub["filter"], r))
        if path == "/a":
            check(len(want) == 3, "the teamwork subscription matches 3", 3, want)
        got = wait_count(lambda: rx.requests(path), len(want), 20, "webhooks on " + path) if want else []
        time.sleep(0.5)
        got = delivered_events(rx, path)
        check(sorted((ev["data"]["id"], ev["data"]["revision"]) for _, ev in got) == want,
              "webhook %s received what its filter matches" % path, want,
              [(ev["data"]["id"], ev["data"]["revision"]) for _, ev in got])
        for req, ev in got:
            check(req["verified"], "standardwebhooks verifies the signature", True, req)
            check(req["headers"]["content-type"] == "application/cloudevents+json" and
                  ev["type"] == "org.npcs.safety-notice.v1" and ev["specversion"] == "1.0" and
                  ev["id"] == "%s.%d" % (ev["data"]["id"], ev["data"]["revision"]),
                  "a structured CloudEvent", None, (req["headers"], ev))
            stored = [r for r in revs if (r["id"], r["revision"]) == (ev["data"]["id"], ev["data"]["revision"])]
            check(stored and stored[0] == ev["data"], "the body is the stored revision", stored, ev["data"])
        check(len({req["headers"]["webhook-id"] for req, _ in got}) == len(got),
              "one webhook-id per delivery", None, [req["headers"]["webhook-id"] for req, _ in got])
    # the privacy canary of the free text reached no receiver
    check("CANARY" not in json.dumps(rx.requests()), "no free text in any webhook")

    # the same independent implementation rejects a tampered body and a stale timestamp
    req = rx.requests("/a")[0]
    hdrs = {k: req["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    check(rx.verify(sub_a["secret"], hdrs, req["body"])["ok"], "the original verifies")
    tampered = req["body"].replace('"revision":1', '"revision":7')
    check(tampered != req["body"] and not rx.verify(sub_a["secret"], hdrs, tampered)["ok"],
          "a tampered body is rejected")
    stale = dict(hdrs, **{"webhook-timestamp": str(int(hdrs["webhook-timestamp"]) - 600)})
    check(not rx.verify(sub_a["secret"], stale, req["body"])["ok"], "a 10-minute-old timestamp is rejected")
    check(abs(int(hdrs["webhook-timestamp"]) - time.time()) < 120, "webhook-timestamp is now, in seconds")

    # email: one message per matching revision, parsed as MIME
    want = sorted((r["id"], r["revision"]) for r in revs if matches(sub_mail["filter"], r))
    check(len(want) == 3, "US-TN is named in the three revisions", 3, want)
    mails = wait_count(smtp.messages, len(want), 20, "the emails")
    got_ids = sorted(m["Message-ID"] for _, m in mails)
    check(got_ids == sorted("<%s.r%d@sn.example.org>" % w for w in want), "Message-ID from notice and revision",
          None, got_ids)
    for envelope, m in mails:
        check(envelope["rcpt_tos"] == ["agency.lead@example.org"] and envelope["tls"] and
              envelope["authenticated_as"] == SmtpReceiver.USER, "over STARTTLS, authenticated", None, envelope)
        check(m.get_content_type() == "multipart/alternative", "multipart/alternative", None, m.get_content_type())
        parts = list(m.iter_parts())
        check([p.get_content_type() for p in parts] == ["text/plain", "text/html"], "a text and an HTML part",
              None, [p.get_content_type() for p in parts])
        for p in parts:
            check(p.get_content_charset() == "utf-8" and p["Content-Transfer-Encoding"] == "quoted-printable",
                  "UTF-8, quoted-printable", None, (p.get_content_charset(), p["Content-Transfer-Encoding"]))
        rev = [r for r in revs if "<%s.r%d@sn.example.org>" % (r["id"], r["revision"]) == m["Message-ID"]][0]
        check(rev["headline"] in str(m["Subject"]) and rev["headline"] in parts[0].get_content(),
              "the headline in the subject and the text", rev["headline"], str(m["Subject"]))
        check("CANARY" not in m.as_string(), "no free text in the email")

    # Kafka: the rule's topic, keyed by notice id, CloudEvents binary mode
    bootstrap = b.read("kafka.bootstrap").strip()
    msgs = kcat_consume(bootstrap, TEAMWORK_TOPIC, 3)
    teamwork = revisions(b, TEAMWORK)
    check(len(msgs) == 3, "kcat reads the three revisions", 3, len(msgs))
    for msg, rev in zip(msgs, teamwork):
        hdr = dict(zip(msg["headers"][::2], msg["headers"][1::2]))
        check(msg["key"] == rev["id"] and json.loads(msg["payload"]) == rev, "key and value", rev["id"], msg)
        check(hdr == {"ce_specversion": "1.0", "ce_id": "%s.%d" % (rev["id"], rev["revision"]),
                      "ce_source": "/sn-broker/notices", "ce_type": "org.npcs.safety-notice.v1",
                      "ce_subject": rev["id"], "ce_time": rev["issued_at"], "content-type": "application/json"},
              "ce_* headers", None, hdr)
    r = subprocess.run(["node", AJV, SCHEMAS, "safety-notice.v1.json"], input="".join(
        m["payload"] + "\n" for m in msgs), capture_output=True, text=True, timeout=60)
    check(r.stdout.split() == ["valid"] * 3, "ajv: every Kafka value is a valid safety notice", None,
          r.stdout + r.stderr)

    # every outbox row delivered; attempts recorded
    check(b.psql("SELECT count(*) FROM outbox WHERE state <> 'delivered'") == "0", "everything delivered")
    check(b.psql("SELECT count(*) FROM delivery_attempts WHERE outcome = 'delivered'") ==
          b.psql("SELECT count(*) FROM outbox"), "one delivered attempt per delivery")

    # an email subscription's test event is a real message too
    before = len(smtp.messages())
    st, res = api(b, "/v1/subscriptions/%d/test" % sub_mail["id"], "POST")
    check(st == 200 and res["delivered"], "the email test event is sent", None, (st, res))
    check(len(smtp.messages()) == before + 1, "one more message received", before + 1, len(smtp.messages()))
    # a digest needs a schedule that parses (14-digests.py tests digests)
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "email",
                                                 "target": "a@example.org", "mode": "digest",
                                                 "schedule": "weekly"})
    check(st == 422 and [e["pointer"] for e in p["errors"]] == ["/schedule"], "a bad schedule is refused",
          None, p)

    # test event, then rotation: both secrets sign during the overlap
    st, res = api(b, "/v1/subscriptions/%d/test" % sub_a["id"], "POST")
    check(st == 200 and res["delivered"] and res["status_code"] == 200, "the test event is delivered", None, res)
    st, rotated = api(b, "/v1/subscriptions/%d/rotate-secret" % sub_a["id"], "POST")
    check(st == 200 and rotated["secret"] != sub_a["secret"] and rotated["previous_secret_until"],
          "a new secret", None, rotated)
    for secrets in ([sub_a["secret"]], [rotated["secret"]]):
        rx.config("/a", secrets)
        st, res = api(b, "/v1/subscriptions/%d/test" % sub_a["id"], "POST")
        check(st == 200, "test event after rotation", 200, res)
        last = rx.requests("/a")[-1]
        check(last["verified"] and len(last["headers"]["webhook-signature"].split()) == 2,
              "two signatures, each secret verifies", None, last)
    test_ids = [r["headers"]["webhook-id"] for r in rx.requests("/a") if r["headers"]["webhook-id"].startswith("msg_test")]
    check(len(test_ids) == 3 and len(set(test_ids)) == 3, "each test event has its own webhook-id", None, test_ids)

    # a subscriber token manages its own jurisdiction's subscriptions only
    tn = create_token(b, "subscriber", "US-TN")
    st, mine = api(b, "/v1/subscriptions", token=tn)
    check(st == 200 and sorted(s["id"] for s in mine["items"]) == sorted([sub_a["id"], sub_mail["id"]]),
          "a subscriber lists its own", None, mine)
    st, _ = api(b, "/v1/subscriptions/%d" % sub_b["id"], token=tn)
    check(st == 404, "another jurisdiction's subscription is not found", 404, st)
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-MN", "channel": "webhook",
                                                 "target": rx.url("/x")}, tn)
    check(st == 403, "a subscriber cannot subscribe another jurisdiction", 403, (st, p))
    emitter = create_token(b, "emitter", "US-TN")
    st, _ = api(b, "/v1/subscriptions", token=emitter)
    check(st == 403, "an emitter token manages no subscriptions", 403, st)

    # bad input: problem+json with the pointer of what is wrong
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "webhook",
                                                 "target": "ftp://x", "filter": ["severity~x", "nope=1",
                                                                                 "theme=~(a"]})
    pointers = sorted(e["pointer"] for e in p.get("errors", []))
    check(st == 422 and pointers == ["/filter/0", "/filter/1", "/filter/2", "/target"],
          "422 naming each bad member", None, (st, p))
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "email",
                                                 "target": "not-an-address", "colour": "red"})
    check(st == 422 and {e["pointer"] for e in p["errors"]} >= {"/colour"}, "unknown members refused", None, p)
    st, upd = api(b, "/v1/subscriptions/%d" % sub_b["id"], "PATCH", {"filter": ["severity=critical"],
                                                                      "enabled": False})
    check(st == 200 and upd["filter"] == ["severity=critical"] and upd["enabled"] is False, "PATCH", None, upd)
    st, _ = api(b, "/v1/subscriptions/%d" % sub_b["id"], "DELETE")
    check(st == 204, "DELETE", 204, st)
    st, _ = api(b, "/v1/subscriptions/%d" % sub_b["id"])
    check(st == 404, "a deleted subscription is gone", 404, st)


def one_revision(b):
    """Five reviews from three jurisdictions: one issued revision."""
    send_teamwork(b, 5)
    wait_for(lambda: caught_up(b), 20, "the engine")
    return revisions(b, TEAMWORK)


def attempts(b, sub_id):
    rows = b.psql("SELECT a.attempt, a.outcome, coalesce(a.status_code, 0), "
                  "extract(epoch FROM a.started_at) FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id "
                  "WHERE o.subscription_id = %d ORDER BY a.id" % sub_id)
    return [(int(a), o, int(c), float(t)) for a, o, c, t in (l.split("|") for l in rows.splitlines() if l)]


def test_retries_with_growing_delays_retry_after_and_gone():
    import tempfile
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    b = started()
    flaky = subscribe(b, rx.url("/flaky"), ["rule=" + TEAMWORK])
    busy = subscribe(b, rx.url("/busy"), ["rule=" + TEAMWORK])
    gone = subscribe(b, rx.url("/gone"), ["rule=" + TEAMWORK])
    rx.config("/flaky", [flaky["secret"]], [{"status": 500}] * 3)
    rx.config("/busy", [busy["secret"]], [{"status": 503, "headers": {"Retry-After": "2"}}])
    rx.config("/gone", [gone["secret"]], [], {"status": 410})
    # no mail server configured here: email subscriptions are refused
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "email",
                                                 "target": "a@example.org"})
    check(st == 422 and [e["pointer"] for e in p["errors"]] == ["/channel"], "no smtp.url, no email", None, p)
    # a subscription paused while its delivery waits for a retry
    paused = subscribe(b, rx.url("/paused"), ["rule=" + TEAMWORK])
    rx.config("/paused", [paused["secret"]], [{"status": 503, "headers": {"Retry-After": "3"}}])
    check(len(one_revision(b)) == 1, "one revision")
    wait_for(lambda: attempts(b, paused["id"]), 20, "the first attempt of the paused one")
    st, _ = api(b, "/v1/subscriptions/%d" % paused["id"], "PATCH", {"enabled": False})
    check(st == 200, "paused", 200, st)

    wait_for(lambda: len(attempts(b, flaky["id"])) == 4, 20, "four attempts")
    got = attempts(b, flaky["id"])
    check([(a, o, c) for a, o, c, _ in got] == [(1, "retry", 500), (2, "retry", 500), (3, "retry", 500),
                                                (4, "delivered", 200)],
          "delivered on the 4th attempt", None, got)
    gaps = [got[i + 1][3] - got[i][3] for i in range(3)]
    check(gaps[0] < gaps[1] < gaps[2] and 0.25 <= gaps[0] and gaps[2] >= 1.0,
          "the delays grow with the schedule (300ms, 600ms, 1200ms +-10%)", None, gaps)
    check(len(rx.requests("/flaky")) == 4 and all(r["verified"] for r in rx.requests("/flaky")),
          "four signed requests", 4, len(rx.requests("/flaky")))
    ids = {r["headers"]["webhook-id"] for r in rx.requests("/flaky")}
    check(len(ids) == 1, "the same webhook-id on every retry", 1, ids)

    wait_for(lambda: len(attempts(b, busy["id"])) == 2, 20, "the retry after 503")
    got = attempts(b, busy["id"])
    check(got[1][1] == "delivered" and got[1][3] - got[0][3] >= 1.9,
          "Retry-After: 2 honoured over the 300 ms of the schedule", None, got)

    wait_for(lambda: attempts(b, gone["id"]), 20, "the 410")
    check([(a, o, c) for a, o, c, _ in attempts(b, gone["id"])] == [(1, "gone", 410)], "410: no retry", None,
          attempts(b, gone["id"]))
    st, sub = api(b, "/v1/subscriptions/%d" % gone["id"])
    check(sub["enabled"] is False and "410" in (sub["disabled_reason"] or ""), "410 disables the subscription",
          None, sub)
    # a later revision is not fanned out to a disabled (410) or paused one
    send_teamwork(b, 5, start=5)
    wait_for(lambda: caught_up(b), 20, "the engine")
    time.sleep(2.5)
    for sub in (gone, paused):
        check(b.psql("SELECT count(*) FROM outbox WHERE subscription_id = %d" % sub["id"]) == "1",
              "nothing more for a disabled subscription")
    check(len(attempts(b, paused["id"])) == 1 and time.time() - attempts(b, paused["id"])[0][3] > 3.5,
          "the paused one's retry waits past its due time", None, attempts(b, paused["id"]))
    st, _ = api(b, "/v1/subscriptions/%d" % paused["id"], "PATCH", {"enabled": True})
    wait_for(lambda: [o for _, o, _, _ in attempts(b, paused["id"])] == ["retry", "delivered"], 10,
             "the paused one's delivery once resumed")


def test_dead_receiver_never_delays_a_healthy_one():
    import tempfile
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    b = started(env={"SN_WEBHOOK_TIMEOUT": "1s", "SN_DELIVERY_BREAKER_THRESHOLD": "3",
                     "SN_DELIVERY_BREAKER_COOLDOWN": "1s"})
    healthy = subscribe(b, rx.url("/ok"), ["rule=" + TEAMWORK])
    hang = subscribe(b, rx.url("/hang"), ["rule=" + TEAMWORK])
    closer = subscribe(b, rx.url("/close"), ["rule=" + TEAMWORK])
    rx.config("/ok", [healthy["secret"]])
    rx.config("/hang", [hang["secret"]], [], {"status": 200, "delay_ms": 5000})
    rx.config("/close", [closer["secret"]], [], {"close_mid_reply": True})
    send_teamwork(b)
    finish_teamwork(b)
    wait_for(lambda: caught_up(b), 20, "the engine")
    committed = {(r["id"], r["revision"]) for r in revisions(b, TEAMWORK)}
    # the healthy receiver has everything within seconds of the commit, while
    # the others are still failing
    got = wait_count(lambda: rx.requests("/ok"), len(committed), 10, "the healthy receiver")
    check({(json.loads(r["body"])["data"]["id"], json.loads(r["body"])["data"]["revision"]) for r in got} ==
          committed, "the healthy receiver got every revision", committed, got)
    stamps = [float(x) for x in b.psql(
        "SELECT extract(epoch FROM delivered_at - created_at) FROM outbox WHERE subscription_id = %d"
        % healthy["id"]).split()]
    check(max(stamps) < 2.0, "each delivered within 2 s of its commit", None, stamps)
    # the failing ones end dead-lettered after the schedule (1 + 3 attempts)
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE state = 'dead'") == str(2 * len(committed)),
             60, "the failing deliveries dead-lettered")
    opened = {l.get("target") for l in b.logs() if l.get("msg", "").startswith("delivery: circuit breaker open")}
    check(opened == {rx.url("/hang"), rx.url("/close")}, "the failing targets' breakers opened, not the healthy one's",
          None, opened)
    for sub in (hang, closer):
        rows = b.psql("SELECT attempts, last_error FROM outbox WHERE subscription_id = %d" % sub["id"])
        for line in rows.splitlines():
            n, err = line.split("|", 1)
            check(int(n) == 4 and err, "4 attempts, the last error kept", None, line)
    out = subprocess.run([os.path.join(os.path.dirname(b_bin()), "snctl"), "--url", "http://" + b.address,
                          "--token-file", b.dir + "/admin.token", "deliveries", "dead", "--json"],
                         capture_output=True, text=True, timeout=60)
    dead = [json.loads(l) for l in out.stdout.splitlines() if l]
    check(len(dead) == 2 * len(committed) and all(x["state"] == "dead" for x in dead),
          "snctl deliveries dead lists them", 2 * len(committed), (out.stdout, out.stderr))
    # a retried dead letter is attempted again, now against a healed receiver
    rx.config("/close", [closer["secret"]])
    st, res = api(b, "/v1/deliveries/%d/retry" % dead[0]["id"], "POST")
    check(st == 200 and res["state"] == "pending", "retry", None, res)
    wait_for(lambda: b.psql("SELECT state FROM outbox WHERE id = %d" % dead[0]["id"]) == "delivered"
             or None if dead[0]["subscription_id"] == closer["id"] else True, 20, "the retried delivery")
    metrics = http("GET", b.url("/metrics"))[2].decode()
    check(re.search(r'sn_deliveries_total\{channel="webhook",outcome="dead"\} %d' % (2 * len(committed)), metrics),
          "dead letters counted in /metrics", None, [l for l in metrics.splitlines() if "deliver" in l])


def b_bin():
    from harness import BIN
    return BIN


def test_kill9_mid_dispatch_loses_nothing():
    import tempfile
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    b = started()
    subs = [subscribe(b, rx.url("/s%d" % i), ["rule=" + TEAMWORK]) for i in range(3)]
    for i, s in enumerate(subs):
        rx.config("/s%d" % i, [s["secret"]], [], {"status": 200, "delay_ms": 700})
    send_teamwork(b)
    finish_teamwork(b)
    # kill while attempts are in flight (the receiver holds each for 0.7 s)
    wait_for(lambda: rx.requests(), 20, "the first attempts")
    b.kill9()
    b.start()
    b.wait_ready()
    committed = {(r["id"], r["revision"]) for r in revisions(b, TEAMWORK)}
    for i, s in enumerate(subs):
        wait_for(lambda: {(json.loads(r["body"])["data"]["id"], json.loads(r["body"])["data"]["revision"])
                          for r in rx.requests("/s%d" % i)} >= committed, 60, "every revision on /s%d" % i)
    # a repeat carries the same webhook-id as the first copy
    seen = {}
    for r in rx.requests():
        data = json.loads(r["body"])["data"]
        key = (r["path"], data["id"], data["revision"])
        seen.setdefault(key, set()).add(r["headers"]["webhook-id"])
    check(all(len(ids) == 1 for ids in seen.values()), "repeats keep their webhook-id", None, seen)
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE state <> 'delivered'") == "0", 30,
             "every outbox row delivered")
    # SIGTERM while attempts are in flight: a clean exit (the sanitizer build
    # reports any leak of what was in flight), and after a restart the rest
    # arrives
    rx.config("/s0", [subs[0]["secret"]], [], {"status": 200, "delay_ms": 1500})
    before = len(rx.requests("/s0"))
    send_teamwork(b, 10, start=10, prefix="S")
    wait_for(lambda: len(rx.requests("/s0")) > before, 20, "a slow attempt in flight")
    check(b.stop() == 0, "SIGTERM with attempts in flight exits 0", 0, b.tail())
    b.start()
    b.wait_ready()
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE state <> 'delivered'") == "0", 60,
             "every outbox row delivered after the restart")


def test_kafka_down_then_up():
    mock = KafkaMock(1, [TEAMWORK_TOPIC])
    b = started(env={"SN_KAFKA_BOOTSTRAP_SERVERS": mock.bootstrap})
    mock.command("down 1")
    wait_for(lambda: "kafka" in json.loads(http("GET", b.url("/readyz"))[2])["not_ready"], 30,
             "the broker to see Kafka down")
    send_teamwork(b)
    finish_teamwork(b)
    wait_for(lambda: caught_up(b), 20, "the engine")
    time.sleep(1.5)
    pending = b.psql("SELECT count(*) FROM outbox WHERE channel = 'kafka' AND state = 'pending'")
    check(pending == "3", "the outbox holds the Kafka deliveries while Kafka is down", "3", pending)
    mock.command("up 1")
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE channel = 'kafka' AND state = 'delivered'") == "3",
             60, "the outbox to drain once Kafka is back")
    msgs = kcat_consume(mock.bootstrap, TEAMWORK_TOPIC, 3)
    check(sorted((json.loads(m["payload"])["id"], json.loads(m["payload"])["revision"]) for m in msgs) ==
          sorted((r["id"], r["revision"]) for r in revisions(b, TEAMWORK)), "every revision published once Kafka is up")


def test_silence_holds_then_releases_the_latest():
    import tempfile
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    b = started()
    sub = subscribe(b, rx.url("/s"), ["rule=" + TEAMWORK])
    rx.config("/s", [sub["secret"]])
    st, silence = api(b, "/v1/silences", "POST", {"matchers": ["rule=" + TEAMWORK, "severity=~advisory|warning"],
                                                  "duration": "1h", "comment": "known, being handled"})
    check(st == 201 and silence["active"], "silence created", None, silence)
    send_teamwork(b)
    wait_for(lambda: caught_up(b), 20, "the engine")
    time.sleep(1.5)
    revs = revisions(b, TEAMWORK)
    check(len(revs) == 2, "issued and escalated", 2, len(revs))
    check(rx.requests("/s") == [] and b.psql("SELECT count(*) FROM outbox WHERE state = 'silenced'") == "2",
          "stored, not delivered", None, rx.requests("/s"))
    check(b.psql("SELECT count(*) FROM outbox WHERE channel = 'kafka' AND state = 'delivered'") == "2",
          "the Kafka record is not silenced")
    st, _ = api(b, "/v1/silences/%d" % silence["id"], "DELETE")
    check(st == 200, "silence expired", 200, st)
    got = wait_count(lambda: rx.requests("/s"), 1, 10, "the release")
    time.sleep(1)
    got = rx.requests("/s")
    check([json.loads(r["body"])["data"]["revision"] for r in got] == [2],
          "only the latest revision of the still active notice is delivered", [2],
          [json.loads(r["body"])["data"]["revision"] for r in got])
    check(b.psql("SELECT state FROM outbox WHERE subscription_id = %d ORDER BY revision" % sub["id"]).split() ==
          ["suppressed", "delivered"], "the earlier one suppressed")


class HttpsReceiver:
    """A webhook target over HTTPS with a certificate of the test's own CA."""

    def __init__(self, d):
        import http.server
        import ssl
        import threading
        from delivery_util import make_tls
        self.ca, cert, key = make_tls(d)
        self.bodies = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_https_targets_are_verified():
    import tempfile
    trusted = HttpsReceiver(tempfile.mkdtemp(prefix="delivery-"))
    unknown = HttpsReceiver(tempfile.mkdtemp(prefix="delivery-"))  # a CA of its own
    try:
        b = started(env={"SN_WEBHOOK_CA_FILE": trusted.ca})
        # a certificate of another CA is not trusted: the test event fails
        sub = subscribe(b, "https://127.0.0.1:%d/hook" % unknown.port, [])
        st, res = api(b, "/v1/subscriptions/%d/test" % sub["id"], "POST")
        check(st == 502 and "certificate" in res.get("error", "").lower() and not unknown.bodies,
              "an unknown CA is refused", None, (st, res))
        # webhook.ca_file's CA is
        sub = subscribe(b, "https://127.0.0.1:%d/hook" % trusted.port, [])
        st, res = api(b, "/v1/subscriptions/%d/test" % sub["id"], "POST")
        check(st == 200 and res["status_code"] == 204 and len(trusted.bodies) == 1,
              "delivered over verified TLS", None, (st, res))
    finally:
        trusted.close()
        unknown.close()


def test_two_processes_dispatch_each_delivery_once():
    import tempfile
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    provider = started(name="pg-provider")
    provider.psql("CREATE DATABASE shared")
    env = dict(BASE_ENV, SN_DATABASE_URL=provider.conninfo("shared"),
               SN_KAFKA_BOOTSTRAP_SERVERS=provider.read("kafka.bootstrap").strip(),
               SN_RULES_PATH=os.path.join(ROOT, "deploy", "rules"))
    a = Broker(embedded=False, name="dispatch-a", env=env).start()
    a.wait_ready()
    c = Broker(embedded=False, name="dispatch-c", env=env).start()
    c.wait_ready()
    token = "sn_test_shared_admin_token_0123456789abcdef"
    import hashlib
    provider.psql("INSERT INTO tokens (role, name, token_sha256) VALUES ('admin', 'test', "
                  "decode('%s', 'hex')); SELECT pg_notify('sn_tokens', 'created')"
                  % hashlib.sha256(token.encode()).hexdigest(), dbname="shared")
    wait_for(lambda: api(a, "/v1/subscriptions", token=token)[0] == 200 and
             api(c, "/v1/subscriptions", token=token)[0] == 200, 10, "the token in both processes")
    subs = [subscribe(a if i % 2 else c, rx.url("/p%d" % i), ["rule=" + TEAMWORK], token=token)
            for i in range(10)]
    for i, s in enumerate(subs):
        rx.config("/p%d" % i, [s["secret"]])
    for i in range(12):
        j = JURIS[i % len(JURIS)]
        target = a if i % 2 else c
        st, _, body = post(target, token, event(j, "ev-%d" % i, teamwork_review(j, "R-%d" % i, T0 + i * DAY)))
        check(st == 202, "review accepted", 202, (st, body))
    try:
        wait_for(lambda: provider.psql("SELECT count(*) FROM outbox WHERE state <> 'delivered'", dbname="shared")
                 == "0" and int(provider.psql("SELECT count(*) FROM outbox", dbname="shared")) > 0, 30,
                 "everything delivered")
    except Exception:
        raise AssertionError(provider.psql("SELECT channel, state, attempts, last_error, due_at - now() "
                                           "FROM outbox WHERE state <> 'delivered'", dbname="shared"))
    committed = int(provider.psql("SELECT count(*) FROM notice_revisions", dbname="shared"))
    got = rx.requests()
    check(len(got) == 10 * committed and all(r["verified"] for r in got),
          "each revision once to each of the 10 subscribers", 10 * committed, len(got))
    ids = [r["headers"]["webhook-id"] for r in got]
    check(len(set(ids)) == len(ids), "no delivery made twice by the two dispatchers", None, ids)
    check(provider.psql("SELECT count(*) FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id "
                        "WHERE o.channel = 'webhook'", dbname="shared") == str(len(got)),
          "one attempt per webhook delivery")


def test_snctl_manages_subscriptions_silences_and_deliveries():
    import tempfile
    from harness import SNCTL
    rx = WebhookReceiver(tempfile.mkdtemp(prefix="delivery-"))
    b = started()

    def snctl(*args, ok=True):
        r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token"]
                           + list(args), capture_output=True, text=True, timeout=60)
        check((r.returncode == 0) == ok, "snctl " + " ".join(args), ok, (r.returncode, r.stdout, r.stderr))
        return r.stdout

    out = snctl("subscriptions", "create", "--subscriber", "US-TN", "--channel", "webhook", "--target",
                rx.url("/cli"), "--filter", "rule=" + TEAMWORK, "--filter", "severity=~advisory|warning")
    secret = out.splitlines()[0]
    check(secret.startswith("whsec_"), "the secret alone on the first line", None, out)
    sub_id = [s for s in api(b, "/v1/subscriptions")[1]["items"] if s["target"] == rx.url("/cli")][0]["id"]
    rx.config("/cli", [secret])
    check(rx.url("/cli") in snctl("subscriptions", "list"), "listed")
    snctl("subscriptions", "test", str(sub_id))
    check(rx.requests("/cli")[-1]["verified"], "snctl's test event is signed")
    err = snctl("subscriptions", "create", "--subscriber", "US-TN", "--channel", "webhook", "--target",
                "ftp://nowhere", ok=False)
    check(err == "", "nothing on stdout for a refused subscription", "", err)
    snctl("silences", "create", "--matcher", "rule=" + TEAMWORK, "--for", "1h", "--comment", "cli test")
    listed = [json.loads(l) for l in snctl("silences", "list", "--json").splitlines() if l]
    check(len(listed) == 1 and listed[0]["comment"] == "cli test" and listed[0]["active"], "silence listed",
          None, listed)
    send_teamwork(b, 5)
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE state = 'silenced'") == "1", 20, "held")
    snctl("silences", "expire", str(listed[0]["id"]))
    wait_for(lambda: len(rx.requests("/cli")) == 2, 20, "released on expiry")
    deliveries = [json.loads(l) for l in snctl("deliveries", "list", "--json").splitlines() if l]
    check(sorted(d["channel"] for d in deliveries) == ["kafka", "webhook"] and
          all(d["state"] == "delivered" for d in deliveries), "deliveries listed", None, deliveries)
    shown = snctl("deliveries", "show", str([d for d in deliveries if d["channel"] == "webhook"][0]["id"]))
    check("delivered" in shown, "show has the history", None, shown)
    snctl("subscriptions", "delete", str(sub_id))
    check(rx.url("/cli") not in snctl("subscriptions", "list"), "deleted")
    for name in ("sn_outbox_depth", "sn_outbox_oldest_undelivered_seconds", "sn_outbox_dead",
                 'sn_delivery_attempt_seconds_count{channel="webhook"}',
                 'sn_deliveries_total{channel="kafka",outcome="delivered"}'):
        wait_for(lambda: name in http("GET", b.url("/metrics"))[2].decode(), 10, name + " in /metrics")


def test_email_over_implicit_tls():
    import tempfile
    smtp = SmtpReceiver(tempfile.mkdtemp(prefix="delivery-"), implicit_tls=True)
    b = started(env=smtp.env())
    sub = subscribe(b, "lead@example.org", [], channel="email")
    st, res = api(b, "/v1/subscriptions/%d/test" % sub["id"], "POST")
    check(st == 200 and res["delivered"], "sent over smtps://", None, (st, res))
    (envelope, m), = smtp.messages()
    check(envelope["tls"] and envelope["authenticated_as"] == SmtpReceiver.USER and
          envelope["rcpt_tos"] == ["lead@example.org"], "TLS from the first byte, authenticated", None, envelope)
    check(m.get_content_type() == "multipart/alternative", "a notice email", None, m.get_content_type())
