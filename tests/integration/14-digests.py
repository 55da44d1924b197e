"""Digests through the real binary: a fixed synthetic data set (reviews of the
current and the previous period of a daily schedule in America/Chicago, a
rules file whose headline holds HTML), a digest subscription on each channel;
the digest's counts and rankings checked against SQL written here; the email
received by a real SMTP server and its MIME parts checked (bars in the HTML,
everything escaped); the webhook verified with standardwebhooks and validated
with ajv against schemas/digest.v1.json; the same period never sent twice
across restarts; a period missed while the broker was down sent when it
comes back.

Time: the schedule falls due two hours from now, so the test moves the
digest clock, never the data: digest.clock_offset (test-only) makes the
broker's digest clock run ahead of the wall clock. A restart with offset 3h
is the broker back after the period ended; a restart with 1d3h is the broker
back after being down for the whole next period."""
import datetime
import json
import os
import subprocess
import tempfile
import time
from zoneinfo import ZoneInfo

from delivery_util import SmtpReceiver, WebhookReceiver, wait_count
from harness import ROOT, SNCTL, Broker, api, check, wait_for
from ingest_util import event, post, review

ZONE = "America/Chicago"
SCHEMAS = os.path.join(ROOT, "schemas")
AJV = os.path.join(ROOT, "tests", "schema", "ajv-check.mjs")
RULE = "digest-teamwork"
HEADLINE = '<b>Teamwork</b> & <script>alert("x")</script>: {reviews} reviews'
MIN_CELL = 3
# a leadership group (only an admin manages its subscriptions): its digests
# count the period itself; a jurisdiction's count whole months
LEADERS = "leadership:national"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def schedule_two_hours_ahead():
    """A daily schedule at the Chicago wall time two hours from now: its
    current period began 22 hours ago and ends in two hours."""
    z = ZoneInfo(ZONE)
    fire = (datetime.datetime.now(z) + datetime.timedelta(hours=2)).replace(second=0, microsecond=0)
    prev = (fire - datetime.timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=z)
    before = (fire - datetime.timedelta(days=2)).replace(tzinfo=None).replace(tzinfo=z)
    after = (fire + datetime.timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=z)
    return ("daily %02d:%02d %s" % (fire.hour, fire.minute, ZONE),
            [int(x.timestamp()) for x in (before, prev, fire, after)])


# The data set: (minutes before now, jurisdiction, themes) for the current
# period (all within its first 21 hours) and (minutes before its start) for
# the previous one. Teamwork rows have partner law_enforcement.
CURRENT = [
    (300, "US-TN", ["teamwork_coordination", "assessment"]),
    (290, "US-MN", ["teamwork_coordination", "assessment"]),
    (280, "US-CA", ["teamwork_coordination"]),
    (270, "US-GA", ["teamwork_coordination", "assessment"]),
    (260, "US-OK", ["teamwork_coordination", "workload"]),
    (250, "US-TN", ["teamwork_coordination", "workload"]),
    (240, "US-MN", ["assessment"]),
]
PREVIOUS = [
    (60, "US-TN", ["assessment", "workload"]),
    (70, "US-CA", ["assessment", "workload"]),
    (80, "US-GA", ["assessment", "workload"]),
    (90, "US-GA", ["workload", "teamwork_coordination"]),
    (100, "US-TN", ["workload"]),
]


def io(theme):
    o = {"theme": theme, "seips_domain": "organization", "priority": "high"}
    if theme == "teamwork_coordination":
        o["partner"] = "law_enforcement"
    return o


def rules_dir():
    d = tempfile.mkdtemp(prefix="digest-rules-")
    rule = {"id": RULE, "description": "teamwork with law enforcement, for the digest test",
            "match": ["kind=improvement_opportunity", "theme=teamwork_coordination",
                      "partner=law_enforcement"],
            "window": "30d",
            "levels": [{"severity": "advisory", "min_reviews": 3, "min_jurisdictions": 3},
                       {"severity": "warning", "min_reviews": 6, "min_jurisdictions": 5}],
            "repeat_interval": "7d", "resolve_after": "30d", "topic": "notices.digest",
            "headline": HEADLINE, "summary": "{reviews} reviews in {window}"}
    with open(os.path.join(d, "digest.json"), "w") as f:
        json.dump({"rules": [rule]}, f)
    return d


def post_data_set(b, period_start):
    admin = b.read("admin.token").strip()
    now = time.time()
    rows = [(period_start - m * 60, j, th) for m, j, th in PREVIOUS]
    rows += [(now - m * 60, j, th) for m, j, th in CURRENT]
    rows.sort()
    for i, (t, j, themes) in enumerate(rows):
        r = review(j, "D-%d" % i, finalized_at=iso(t), improvement_opportunities=[io(x) for x in themes],
                   family_needs=[])
        st, _, body = post(b, admin, event(j, "dev-%d" % i, r))
        check(st == 202, "review %d accepted" % i, 202, (st, body))


def expected_counts(b, start, end, prev_start):
    """The digest's themes and totals computed here, in SQL of the test's own."""
    def per_theme(s, e):
        rows = b.psql("SELECT theme, count(DISTINCT jurisdiction || '/' || review_id), "
                      "count(DISTINCT jurisdiction) FROM facts WHERE retracted_at IS NULL "
                      "AND kind = 'improvement_opportunity' AND event_time >= to_timestamp(%d) "
                      "AND event_time < to_timestamp(%d) GROUP BY theme" % (s, e))
        return {l.split("|")[0]: (int(l.split("|")[1]), int(l.split("|")[2]))
                for l in rows.splitlines() if l}
    cur, prev = per_theme(start, end), per_theme(prev_start, start)

    def shown(n):
        return n if n >= MIN_CELL else "<%d" % MIN_CELL

    def ranking(k):
        rows = [(t, c[k], prev.get(t, (0, 0))[k]) for t, c in cur.items() if c[k] > 0]
        rows.sort(key=lambda r: (-(r[1] if r[1] >= MIN_CELL else 0), r[0]))
        return [{"theme": t, "count": shown(n), "previous": shown(p),
                 "change": n - p if n >= MIN_CELL and p >= MIN_CELL else None} for t, n, p in rows[:5]]
    totals = b.psql("SELECT count(DISTINCT jurisdiction || '/' || review_id) FILTER (WHERE event_time >= "
                    "to_timestamp(%d)), count(DISTINCT jurisdiction) FILTER (WHERE event_time >= "
                    "to_timestamp(%d)) FROM facts WHERE retracted_at IS NULL AND event_time >= "
                    "to_timestamp(%d) AND event_time < to_timestamp(%d)" % (start, start, start, end))
    return ranking(0), ranking(1), [int(x) for x in totals.split("|")]


def expected_notices(b, start, end):
    rows = b.psql("SELECT DISTINCT notice_id, status FROM notice_revisions WHERE issued_at >= "
                  "to_timestamp(%d) AND issued_at < to_timestamp(%d) AND status IN "
                  "('issued', 'escalated', 'resolved') ORDER BY 1, 2" % (start, end))
    out = {"new": [], "escalated": [], "resolved": []}
    for l in rows.splitlines():
        nid, status = l.split("|")
        out[{"issued": "new"}.get(status, status)].append(nid)
    return out


def restart(b, offset):
    check(b.stop() == 0, "the broker stops cleanly", 0, b.tail())
    b.env["SN_DIGEST_CLOCK_OFFSET"] = offset
    b.start()
    b.wait_ready()


def test_digests_end_to_end():
    d = tempfile.mkdtemp(prefix="digests-")
    rx = WebhookReceiver(d)
    smtp = SmtpReceiver(d)
    env = {"SN_RULES_TICK": "0s", "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_RULES_PATH": rules_dir(),
           "SN_DIGEST_TICK": "300ms", "SN_HTTP_PUBLIC_URL": "https://sn.example.org/",
           "SN_DELIVERY_RETRY_SCHEDULE": "300ms,600ms"}
    env.update(smtp.env())
    b = Broker(env=env).start()
    b.wait_ready()
    schedule, (before, start, end, after) = schedule_two_hours_ahead()

    # the grammar is checked when subscribing
    for bad, why in (("daily 7:00 America/Chicago", "not a schedule"), ("daily 07:00 Mars/Olympus", "time zone"),
                     ('cron "0 7 31 2 *" UTC', "never fires"), ('cron "0 7 * *" UTC', "five fields")):
        st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "webhook",
                                                     "target": rx.url("/x"), "mode": "digest", "schedule": bad})
        check(st == 422 and p["errors"][0]["pointer"] == "/schedule" and why in p["errors"][0]["message"],
              "422 on /schedule for %r" % bad, why, (st, p))
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "webhook",
                                                 "target": rx.url("/x"), "mode": "digest"})
    check(st == 422 and p["errors"][0]["pointer"] == "/schedule", "mode digest needs a schedule", 422, (st, p))

    def subscribe(channel, target, filter, skip_empty=False):
        st, s = api(b, "/v1/subscriptions", "POST", {"subscriber": LEADERS, "channel": channel, "target": target,
                                                     "filter": filter, "mode": "digest", "schedule": schedule,
                                                     "skip_empty": skip_empty})
        check(st == 201 and s["mode"] == "digest" and s["schedule"] == schedule and
              s["skip_empty"] == skip_empty, "digest subscription created", 201, (st, s))
        return s
    mail = subscribe("email", "leader@example.org", [])
    hook = subscribe("webhook", rx.url("/digest"), ["rule=" + RULE])
    quiet = subscribe("webhook", rx.url("/quiet"), ["rule=no-such-rule"], skip_empty=True)
    rx.config("/digest", [hook["secret"]])
    rx.config("/quiet", [quiet["secret"]])

    post_data_set(b, start)
    wait_for(lambda: b.psql("SELECT (SELECT last_fact_id FROM engine_state) = "
                            "(SELECT coalesce(max(id), 0) FROM facts)") == "t", 30, "the engine caught up")
    statuses = b.psql("SELECT string_agg(status, ',' ORDER BY revision) FROM notice_revisions")
    check(statuses.startswith("issued,escalated"), "the rule issues then escalates its notice",
          "issued,escalated", statuses)

    # nothing is due yet: the period ends in two hours
    time.sleep(1.5)
    check(b.psql("SELECT count(*) FROM digests") == "0", "no digest before the period ends")

    # the preview: what would be sent, so far
    def snctl(*args):
        r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token"] +
                           list(args), capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "snctl " + " ".join(args), 0, (r.returncode, r.stderr))
        return r.stdout
    text = snctl("digest", "preview", "--subscription", str(mail["id"]))
    check(text.startswith("Subject: Safety Notice digest") and "1 new, 1 escalated, 0 resolved" in text and
          "Reviews finalized in the period: 7 (before: 5, change +2)" in text and
          HEADLINE.replace("{reviews}", "3") in text, "the text preview", None, text)
    html = snctl("digest", "preview", "--subscription", str(mail["id"]), "--html")
    check("<script>" not in html and "&lt;script&gt;" in html and 'class="bar"' in html, "the HTML preview",
          None, html[:2000])
    past = snctl("digest", "preview", "--subscription", str(mail["id"]), "--period", iso(start - 3600))
    check("Nothing new" not in past and "Reviews finalized in the period: 5" in past and "New notices (0)" in past,
          "a preview of the previous period", None, past)
    st, p = api(b, "/v1/subscriptions/%d/digest-preview?format=pdf" % mail["id"])
    check(st == 400, "a bad format is a 400", 400, (st, p))

    # the period ends (the broker comes back 3 hours later): one digest each
    restart(b, "3h")
    wait_for(lambda: b.psql("SELECT count(*) FROM digests") == "3", 20, "three digests stored")
    mails = wait_count(smtp.messages, 1, 20, "the digest email")
    hooks = wait_count(lambda: rx.requests("/digest"), 1, 20, "the digest webhook")
    quiet_hooks = wait_count(lambda: rx.requests("/quiet"), 1, 20, "the quiet digest (reviews, no notice)")

    by_reviews, by_jurisdictions, totals = expected_counts(b, start, end, before)
    notices = expected_notices(b, start, end)
    check(len(notices["new"]) == 1 and notices["new"] == notices["escalated"], "one notice, issued and escalated",
          None, notices)
    # the fixed data set, as known: teamwork 6 reviews from 5, assessment 4
    # from 4 (3 before), workload 2 (5 before: shown as <3 and no change)
    check([(r["theme"], r["count"]) for r in by_reviews] ==
          [("teamwork_coordination", 6), ("assessment", 4), ("workload", "<3")], "the SQL of the test",
          None, by_reviews)
    req = hooks[0]
    ev = json.loads(req["body"])
    check(req["verified"], "standardwebhooks verifies the digest", True, req)
    check(ev["type"] == "org.npcs.safety-digest.v1" and ev["source"] == "/sn-broker/digests" and
          ev["time"] == iso(end) and req["headers"]["content-type"] == "application/cloudevents+json",
          "a structured CloudEvent of the digest", None, ev)
    data = ev["data"]
    check(data["period"]["start"] == iso(start) and data["period"]["end"] == iso(end) and
          data["previous_period"] == {"start": iso(before), "end": iso(start)} and
          data["counted"] == {"start": iso(start), "end": iso(end), "granularity": "period"},
          "the period", (iso(start), iso(end)), data)
    check(data["themes"]["by_reviews"] == by_reviews, "ranking by reviews = the test's SQL", by_reviews,
          data["themes"]["by_reviews"])
    check(data["themes"]["by_jurisdictions"] == by_jurisdictions, "ranking by jurisdictions = the test's SQL",
          by_jurisdictions, data["themes"]["by_jurisdictions"])
    check([data["totals"]["reviews"], data["totals"]["jurisdictions"]] == totals and
          data["totals"]["previous_reviews"] == 5 and data["totals"]["reviews_change"] == 2,
          "totals", totals, data["totals"])
    for group in ("new", "escalated", "resolved"):
        got = [n["id"] for n in data["notices"][group]]
        check(got == notices[group], "notices %s = the test's SQL" % group, notices[group], got)
    link = data["notices"]["new"][0]["link"]
    check(link == "https://sn.example.org/dashboard/notices/" + notices["new"][0], "a dashboard link", None, link)
    r = subprocess.run(["node", AJV, SCHEMAS, "digest.v1.json"], input=json.dumps(data) + "\n",
                       capture_output=True, text=True, timeout=60)
    check(r.stdout.split() == ["valid"], "ajv: the webhook's data is a valid digest", None, r.stdout + r.stderr)
    check(ev["specversion"] == "1.0" and ev["id"] == data["id"] and ev["datacontenttype"] == "application/json"
          and ev["subject"] == "subscription/%d" % hook["id"], "the CloudEvent's attributes", None, ev)
    qdata = json.loads(quiet_hooks[0]["body"])["data"]
    check(qdata["notices"]["new"] == [] and not qdata["nothing_new"], "the quiet one: reviews but no notice",
          None, qdata)

    envelope, m = mails[0]
    check(envelope["rcpt_tos"] == ["leader@example.org"] and envelope["tls"], "to the subscriber over STARTTLS",
          None, envelope)
    check(m.get_content_type() == "multipart/alternative", "multipart/alternative", None, m.get_content_type())
    parts = list(m.iter_parts())
    check([p.get_content_type() for p in parts] == ["text/plain", "text/html"], "a text and an HTML part",
          None, [p.get_content_type() for p in parts])
    text, html = parts[0].get_content(), parts[1].get_content()
    check("1 new, 1 escalated, 0 resolved" in str(m["Subject"]), "the subject counts", None, str(m["Subject"]))
    want_id = "<sd-%d-%s.r1@sn.example.org>" % (mail["id"], time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start)))
    check(m["Message-ID"] == want_id, "one Message-ID per digest and period", want_id, m["Message-ID"])
    check(HEADLINE.replace("{reviews}", "3") in text and "1. teamwork_coordination: 6 reviews" in text and
          "workload: <3 reviews" in text, "the text part", None, text)
    check("<script>" not in html and "<b>Teamwork" not in html and
          "&lt;b&gt;Teamwork&lt;/b&gt; &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html,
          "the HTML part escapes the headline", None, html)
    check(html.count('class="bar"') == 4 and 'background:#1f5fa8' in html and "<img" not in html and
          "<script" not in html.lower().replace("&lt;script", ""),
          "bars made of tables: one per shown count (two in each ranking), no images, no scripts", None, html)
    check("https://sn.example.org/dashboard/notices/" + notices["new"][0] in html, "the link in the HTML")

    # the same period is not sent again after a restart
    wait_for(lambda: b.psql("SELECT count(*) FROM outbox WHERE digest_id IS NOT NULL AND state = 'delivered'")
             == "3", 20, "the digests delivered")
    restart(b, "3h")
    time.sleep(2)
    check(b.psql("SELECT count(*) FROM digests") == "3", "no digest twice", "3",
          b.psql("SELECT count(*) FROM digests"))
    check(len(smtp.messages()) == 1 and len(rx.requests("/digest")) == 1, "nothing sent twice")

    # down through the whole next period: sent when the broker comes back
    restart(b, "27h")
    wait_for(lambda: b.psql("SELECT count(*) FROM digests") == "6", 20, "the missed period's digests")
    mails = wait_count(smtp.messages, 2, 20, "the missed period's email")
    hooks = wait_count(lambda: rx.requests("/digest"), 2, 20, "the missed period's webhook")
    data2 = json.loads(hooks[1]["body"])["data"]
    check(data2["period"]["start"] == iso(end) and data2["period"]["end"] == iso(after) and data2["nothing_new"],
          "the next period: nothing new", None, data2)
    check("Nothing new" in list(mails[1][1].iter_parts())[0].get_content() and
          "nothing new" in str(mails[1][1]["Subject"]), "a short nothing-new email", None, str(mails[1][1]["Subject"]))
    time.sleep(1)
    check(len(rx.requests("/quiet")) == 1, "skip_empty: nothing sent for the empty period")
    check(b.psql("SELECT sent, nothing_new FROM digests WHERE subscription_id = %d ORDER BY period_start"
                 % quiet["id"]) == "t|f\nf|t", "the skipped period is stored as not sent")
    # what makes it hold with several processes: a second store of a period
    # (another process that counted it too) writes nothing
    again = b.psql("SELECT digest_store(%d, to_timestamp(%d), to_timestamp(%d), false, true, '{}')"
                   % (hook["id"], start, end))
    check(again == "" and b.psql("SELECT count(*) FROM outbox WHERE digest_id IS NOT NULL") == "5",
          "a period stored twice is written once", "", again)
    check(b.stop() == 0, "stops cleanly", 0, b.tail())


def test_subscriber_previews_its_own_only():
    from ingest_util import create_token
    b = Broker(env={"SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}).start()
    b.wait_ready()
    tn = create_token(b, "subscriber", "US-TN")
    mn = create_token(b, "subscriber", "US-MN")
    st, s = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "webhook",
                                                 "target": "http://127.0.0.1:9/x", "mode": "digest",
                                                 "schedule": 'cron "0 7 * * 1" Europe/Berlin'}, tn)
    check(st == 201, "a subscriber subscribes to a digest", 201, (st, s))
    st, body = api(b, "/v1/subscriptions/%d/digest-preview" % s["id"], token=tn)
    check(st == 200 and body.startswith(b"Subject: Safety Notice digest"), "its own preview", 200, (st, body))
    st, body = api(b, "/v1/subscriptions/%d/digest-preview?format=json" % s["id"], token=tn)
    check(st == 200 and body["type"] == "org.npcs.safety-digest.v1", "as the webhook's CloudEvent", 200, (st, body))
    # a jurisdiction chooses its schedule: its counts are whole UTC months
    counted = body["data"]["counted"]
    month = body["data"]["period"]["start"][:8] + "01T00:00:00Z"
    check(counted["granularity"] == "month" and counted["start"] == month and
          counted["end"].endswith("-01T00:00:00Z") and body["data"]["previous_period"]["end"] == month,
          "a jurisdiction's digest counts whole months", month, body["data"])
    r = subprocess.run(["node", AJV, SCHEMAS, "digest.v1.json"], input=json.dumps(body["data"]) + "\n",
                       capture_output=True, text=True, timeout=60)
    check(r.stdout.split() == ["valid"], "ajv: a valid digest", None, r.stdout + r.stderr)
    st, _ = api(b, "/v1/subscriptions/%d/digest-preview" % s["id"], token=mn)
    check(st == 404, "another jurisdiction's is 404", 404, st)
    st, p = api(b, "/v1/subscriptions/%d" % s["id"], "PATCH", {"schedule": "weekly funday 07:00 UTC"}, tn)
    check(st == 422 and p["errors"][0]["pointer"] == "/schedule", "a bad schedule in PATCH is a 422", 422, (st, p))
    st, p = api(b, "/v1/subscriptions/%d" % s["id"], "PATCH", {"schedule": "weekly fri 17:00 UTC",
                                                             "skip_empty": True}, tn)
    check(st == 200 and p["schedule"] == "weekly fri 17:00 UTC" and p["skip_empty"], "PATCH schedule", 200, (st, p))
    st, p = api(b, "/v1/subscriptions", "POST", {"subscriber": "US-TN", "channel": "webhook",
                                                 "target": "http://127.0.0.1:9/y"}, tn)
    st, body = api(b, "/v1/subscriptions/%d/digest-preview" % p["id"], token=tn)
    check(st == 409, "an immediate subscription has no digest", 409, (st, body))
    check(b.stop() == 0, "stops cleanly", 0, b.tail())
