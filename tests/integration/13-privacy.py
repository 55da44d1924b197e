"""Privacy: one agency's case details never reach anyone else.

A simulated partnership (12 jurisdictions, six months up to yesterday) is
rewritten so that every free-text field (each improvement opportunity's
summary, the only free text of schemas/review-completed.v1.json), every review
id and every event id carries a canary string. The reviews come in over HTTP
(structured, binary and batch mode, each with its jurisdiction's emitter token)
and over Kafka (structured and binary), with amendments, duplicates, conflicts
and refused events (HTTP 422, a Kafka message quarantined) that carry canaries
too. Webhook subscribers (the Node receiver), an email subscriber (the aiosmtpd
receiver) and the Kafka notice topics receive what the example rules publish.

Afterwards no canary, and no review's exact finalized_at (to the second, in
any of the forms a timestamp is written), appears in:

  surface                                   a leak it catches
  GET /v1/notices, each /v1/notices/{id}    a review id, summary or finalized_at put into a notice
    and ?format=cap, to another             (its headline, labels, breakdown, issued_at, CAP
    jurisdiction's token                    <sent>/<description>)
  every webhook request: headers and body   the same through the webhook sink, or a header of its own
  every email: the raw .eml, each decoded   the same through the email sink (subject, text, HTML,
    MIME part and header, the envelope      Message-ID, quoted-printable that splits a canary)
  every message of every Kafka topic but    the same through the Kafka sink: key, ce_* headers
    the review input and its DLQ            (ce_time), value
  GET /metrics                              a label made of a review id, an event id or a raw path
  stderr lines at info level and above,     a log line that names a review, quotes a summary or
    and stdout                              an error message that echoes a refused value
  GET /v1/stats/themes                      a theme row that identifies one review
  API replies to another jurisdiction's     GET /v1/reviews/{other}/{id} answering (or answering
    tokens (subscriber and emitter)         differently for an existing review), the
                                            subscriptions of another jurisdiction
and the notice surfaces also hold no day of a finalized_at (a notice says
nothing finer than a month) and never name the jurisdiction that opted out
(privacy.unnamed_jurisdictions).

Every finding names the surface and the item where the canary was seen, with
what the canary stands for; all surfaces are scanned before the test fails.
A check of the scanner itself: the owning jurisdiction's own review reply,
which holds canaries by design, is found to hold them.

The dashboard (as admin and as another jurisdiction's subscriber) and the
digest a US-TN leader would get (its preview, text, HTML and JSON, over
half a year of weeks) are scanned too.

A reply need not hold a timestamp to give it away: test_stats_do_not_date_a_review
bisects GET /v1/stats/themes?until= as another jurisdiction would.
"""
import datetime
import email
import email.policy
import glob
import http.client as httpclient
import json
import os
import re
import urllib.parse
import subprocess
import tempfile
import time

from delivery_util import SmtpReceiver, WebhookReceiver
from harness import SNCTL, Broker, Session, check, http, wait_for
from ingest_util import binary_headers, create_token, post

SIMULATE = os.path.join(os.path.dirname(SNCTL), "sn-simulate")
EMIT = os.path.join(os.path.dirname(SNCTL), "sn-emit")
PREFIX = "qqcanary"
CANARY_RE = re.compile(PREFIX + r"[a-z]*[0-9]*[a-z]?", re.IGNORECASE)
# a timestamp to the second, with T or a space (SQL's text form) between date and time
STAMP_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})")
EPOCH_RE = re.compile(r"(?<![0-9])(1[0-9]{9})(?:[0-9]{3})?(?![0-9])")
DAY_RE = re.compile(r"(?<![0-9])([0-9]{4}-[0-9]{2}-[0-9]{2})(?![0-9])")
UNNAMED = "US-OK-CHEROKEE"
# reviews of these jurisdictions come in over Kafka: the first structured, the second binary
KAFKA_JURISDICTIONS = ("US-CO-DENVER", "US-NY-NYC")
OTHER = "US-MN-HENNEPIN"  # the jurisdiction whose tokens ask for US-TN's data
INPUT_TOPICS = ("reviews.completed", "reviews.completed.dlq")  # the case systems' own data
ENV = {"SN_RULES_TICK": "0s", "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_LOG_LEVEL": "debug",
       "SN_PRIVACY_UNNAMED_JURISDICTIONS": UNNAMED, "SN_DELIVERY_RETRY_SCHEDULE": "300ms,600ms,1200ms"}


def salted(text, token):
    """text with token at its start, its end and after every 8 words, so that
    any piece of it that leaks, truncated or not, holds the canary."""
    words = (text or "free text of the review").split()
    out = [token]
    for i, w in enumerate(words, 1):
        out.append(w)
        if i % 8 == 0:
            out.append(token)
    return " ".join(out + [token])


class DataSet:
    """The simulated events with canaries, and what each canary stands for."""

    def __init__(self, lines):
        self.meaning = {}  # canary -> what it stands for
        self.stamps = set()  # "YYYY-MM-DDTHH:MM:SS" of every finalized_at and event time
        self.events = []
        review_ids = {}
        for n, line in enumerate(lines):
            ev = json.loads(line)
            d = ev["data"]
            key = (d["jurisdiction"], d["review_id"])
            if key not in review_ids:
                review_ids[key] = self.canary("rid%04d" % len(review_ids), "review id of %s's review %s" % key)
            d["review_id"] = review_ids[key]
            ev["id"] = self.canary("evt%04d" % n, "event id of %s's event %s" % (d["jurisdiction"], ev["id"]))
            for k, io in enumerate(d["improvement_opportunities"]):
                token = self.canary("sum%04d%s" % (n, "abcdefgh"[k]), "summary %d of %s's review %s"
                                    % (k, d["jurisdiction"], d["review_id"]))
                io["summary"] = salted(io.get("summary"), token)
            self.note_time(ev["time"])
            self.note_time(d["finalized_at"])
            self.events.append(ev)

    def canary(self, suffix, meaning):
        token = PREFIX + suffix
        self.meaning[token] = meaning
        return token

    def note_time(self, text):
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
        self.stamps.add(t.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def days(self):
        return {s[:10] for s in self.stamps}

    @property
    def epochs(self):
        return {int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp()) for s in self.stamps}


class Scanner:
    """Collects every finding: surface -> [what was found, where, in context]."""

    def __init__(self, data):
        self.data = data
        self.epochs = data.epochs
        self.days = data.days
        self.findings = {}
        self.scanned = {}  # surface -> [items, characters]

    def scan(self, surface, where, text, notice=False):
        """notice=True: text is (or carries) a Safety Notice, which also names no
        day of a finalized_at and never the unnamed jurisdiction."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        counts = self.scanned.setdefault(surface, [0, 0])
        counts[0] += 1
        counts[1] += len(text)
        found = []
        for m in CANARY_RE.finditer(text):
            token = m.group(0).lower()
            what = self.data.meaning.get(token) or next(
                (v for k, v in self.data.meaning.items() if k.startswith(token) or token.startswith(k)),
                "a canary")
            found.append((m, "canary %s (%s)" % (m.group(0), what)))
        for m in STAMP_RE.finditer(text):
            if "%sT%s" % m.groups() in self.data.stamps:
                found.append((m, "the exact finalized_at %s" % m.group(0)))
        for m in EPOCH_RE.finditer(text):
            if int(m.group(1)) in self.epochs:
                found.append((m, "a finalized_at as Unix time %s" % m.group(0)))
        if notice:
            for m in DAY_RE.finditer(text):
                if m.group(1) in self.days and not any(m.start() >= f.start() and m.end() <= f.end()
                                                       for f, _ in found):
                    found.append((m, "the day of a finalized_at %s" % m.group(1)))
            for m in re.finditer(re.escape(UNNAMED), text):
                found.append((m, "the unnamed jurisdiction %s" % UNNAMED))
        for m, what in found:
            context = text[max(0, m.start() - 60):m.end() + 60].replace("\n", "\\n")
            self.add(surface, where, what, "%s in %s: ...%s..." % (what, where, context))
        return len(found)

    def add(self, surface, where, what, finding):
        self.findings.setdefault(surface, []).append((where, what, finding))

    def report(self):
        """Per surface, one example of each kind of finding in each kind of place."""
        def family(text):
            text = re.sub(r"\(.*?\)|sn-[0-9a-f]+|[0-9]{4}-[0-9]{2}-[0-9]{2}\S*", "", text)
            text = re.sub("(%s[a-z]{3})[0-9]+[a-z]?" % PREFIX, r"\1", text)
            return re.sub(r"[0-9]+", "#", text)

        lines = []
        for surface, items in self.findings.items():
            lines.append("%s: %d finding(s)" % (surface, len(items)))
            shown = {}
            for where, what, finding in items:
                shown.setdefault((family(where), family(what)), finding)
            lines += ["    " + f for f in list(shown.values())[:12]]
            if len(shown) > 12:
                lines.append("    ... and %d more kinds" % (len(shown) - 12))
        return "\n".join(lines)


def api(b, path, token, method="GET", body=None):
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    st, headers, raw = http(method, b.url(path), body, h)
    return st, headers, raw


def api_json(b, path, token, method="GET", body=None):
    st, headers, raw = api(b, path, token, method, body)
    return st, (json.loads(raw) if raw and "json" in headers.get("Content-Type", "") else raw)


def token_for(b, role, jurisdiction):
    """A token that works (the broker learns of a new one a moment after the 201)."""
    token = create_token(b, role, jurisdiction)
    wait_for(lambda: api(b, "/v1/rules", token)[0] == 200, 10, "the new %s token of %s" % (role, jurisdiction))
    return token


def psql_int(b, sql):
    return int(b.psql(sql) or 0)


def subscribe(b, token, subscriber, channel, target, filter):
    st, sub = api_json(b, "/v1/subscriptions", token, "POST", {
        "subscriber": subscriber, "channel": channel, "target": target, "filter": filter})
    check(st == 201, "subscription of %s to %s" % (subscriber, target), 201, (st, sub))
    return sub


def emit_kafka(bootstrap, events, binary, d):
    path = os.path.join(d, "kafka-%d.jsonl" % time.monotonic_ns())
    with open(path, "w") as f:
        f.writelines(json.dumps(ev) + "\n" for ev in events)
    r = subprocess.run([EMIT, "--kafka", bootstrap, "--quiet"] + (["--binary"] if binary else []) + [path],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "sn-emit produced to Kafka", 0, (r.returncode, r.stderr[-1000:]))


def send_data_set(b, data, d):
    """Posts the events in finalized_at order, each with its jurisdiction's
    emitter token, over HTTP or Kafka; then amendments, duplicates, conflicts
    and refused events."""
    bootstrap = b.read("kafka.bootstrap").strip()
    jurisdictions = sorted({ev["data"]["jurisdiction"] for ev in data.events})
    tokens = {j: create_token(b, "emitter", j) for j in jurisdictions if j not in KAFKA_JURISDICTIONS}
    wait_for(lambda: all(api(b, "/v1/rules", t)[0] == 200 for t in tokens.values()), 10, "the emitter tokens")
    kafka_sent = 0
    buffered = {j: [] for j in KAFKA_JURISDICTIONS}

    def flush():
        nonlocal kafka_sent
        for i, j in enumerate(KAFKA_JURISDICTIONS):
            if buffered[j]:
                emit_kafka(bootstrap, buffered[j], i == 1, d)
                kafka_sent += len(buffered[j])
                buffered[j] = []
        wait_for(lambda: psql_int(b, "SELECT count(*) FROM events WHERE channel = 'kafka'") >= kafka_sent, 30,
                 "%d events stored from Kafka" % kafka_sent)

    http_events = [ev for ev in data.events if ev["data"]["jurisdiction"] not in KAFKA_JURISDICTIONS]
    for n, ev in enumerate(data.events):
        j = ev["data"]["jurisdiction"]
        if j in KAFKA_JURISDICTIONS:
            buffered[j].append(ev)
            if sum(len(v) for v in buffered.values()) >= 10:
                flush()
            continue
        if n % 3 == 1:
            st, _, body = post(b, tokens[j], json.dumps(ev["data"]), "application/json", binary_headers(ev))
        else:
            st, _, body = post(b, tokens[j], ev)
        check(st == 202, "event %s accepted" % ev["id"], 202, (st, body))
    flush()

    # amendments: a later version of every 20th review, with canaries of its own
    amended = []
    for k, ev in enumerate(http_events[::20]):
        new = json.loads(json.dumps(ev))
        new["id"] = data.canary("amd%04d" % k, "event id of an amendment of " + ev["data"]["review_id"])
        later = datetime.datetime.fromisoformat(ev["time"].replace("Z", "+00:00")) + datetime.timedelta(hours=7)
        later = min(later, datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2))
        new["time"] = new["data"]["finalized_at"] = later.strftime("%Y-%m-%dT%H:%M:%SZ")
        data.note_time(new["time"])
        for i, io in enumerate(new["data"]["improvement_opportunities"]):
            io["summary"] = salted("amended text", data.canary("ams%04d%s" % (k, "abcdefgh"[i]),
                                                               "amended summary of " + ev["data"]["review_id"]))
        amended.append(new)
    # a batch per jurisdiction of the amendments
    by_j = {}
    for ev in amended:
        by_j.setdefault(ev["data"]["jurisdiction"], []).append(ev)
    for j, evs in by_j.items():
        st, _, body = post(b, tokens[j], evs, "application/cloudevents-batch+json")
        check(st == 207 and all(r["status"] == 202 for r in body["results"]), "amendments accepted", 207, (st, body))
    # duplicates (200) and conflicts (409): the conflicting content is never stored
    for ev in http_events[1:4]:
        st, _, _ = post(b, tokens[ev["data"]["jurisdiction"]], ev)
        check(st == 200, "a duplicate", 200, st)
        conflict = json.loads(json.dumps(ev))
        conflict["data"]["improvement_opportunities"][0]["summary"] = salted(
            "conflicting text", data.canary("cnf" + ev["id"][-4:], "summary of a conflicting " + ev["id"]))
        st, _, body = post(b, tokens[ev["data"]["jurisdiction"]], conflict)
        check(st == 409, "a conflict", 409, (st, body))
    # refused: schema violations whose values are canaries (HTTP 422, Kafka quarantine)
    base = http_events[0]
    bad = json.loads(json.dumps(base))
    bad["id"] = data.canary("badevt1", "event id of a refused event")
    bad["data"]["review_id"] = data.canary("badrid1", "review id of a refused event") + "!"
    bad["data"]["incident"]["child_age_band"] = data.canary("badval1", "a refused value")
    bad["data"]["improvement_opportunities"][0]["theme"] = data.canary("badval2", "a refused theme")
    st, _, body = post(b, tokens[base["data"]["jurisdiction"]], bad)
    check(st == 422, "a schema violation is refused", 422, (st, body))
    poison = json.loads(json.dumps(bad))
    poison["source"] = "urn:npcs:jurisdiction:" + KAFKA_JURISDICTIONS[0]
    poison["data"]["jurisdiction"] = KAFKA_JURISDICTIONS[0]
    path = os.path.join(d, "poison.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(poison) + "\n")
    # sn-emit exits 1 for a refused event; over Kafka it cannot know
    r = subprocess.run([EMIT, "--kafka", bootstrap, "--quiet", path], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "the refused event produced to Kafka", 0, r.stderr)
    wait_for(lambda: psql_int(b, "SELECT count(*) FROM quarantine") == 1, 30, "the Kafka message quarantined")


def test_no_case_detail_reaches_anyone_else():
    d = tempfile.mkdtemp(prefix="privacy-", dir=Session.get_root())
    rx = WebhookReceiver(d)
    smtp = SmtpReceiver(d)
    env = dict(ENV)
    env.update(smtp.env())
    b = Broker(env=env).start()
    b.wait_ready()
    admin = b.read("admin.token").strip()

    # subscribers: webhooks of two jurisdictions and of a leadership group, email of one
    tn_sub = token_for(b, "subscriber", "US-TN")
    other_sub = token_for(b, "subscriber", OTHER)
    other_emitter = token_for(b, "emitter", OTHER)
    private = "qqprivate"  # in US-TN's targets: another jurisdiction must not see them
    hooks = {
        "/tn-%s-hook" % private: subscribe(b, tn_sub, "US-TN", "webhook", rx.url("/tn-%s-hook" % private), []),
        "/mn-hook": subscribe(b, other_sub, OTHER, "webhook", rx.url("/mn-hook"), ["rule=recurring-theme"]),
        "/leadership": subscribe(b, admin, "leadership:national", "webhook", rx.url("/leadership"),
                                 ["status!=resolved"]),
    }
    for path, sub in hooks.items():
        rx.config(path, [sub["secret"]])
    mail = subscribe(b, tn_sub, "US-TN", "email", "%s-tn-lead@example.org" % private, [])
    # a digest subscriber: what its digest would say is scanned below (preview)
    st, digest_sub = api_json(b, "/v1/subscriptions", tn_sub, "POST", {
        "subscriber": "US-TN", "channel": "webhook", "target": rx.url("/tn-digest"), "mode": "digest",
        "schedule": "weekly mon 07:00 America/Chicago", "filter": []})
    check(st == 201, "a digest subscription", 201, (st, digest_sub))

    # the data set: six months up to yesterday, every free text, review id and event id a canary
    today = datetime.datetime.now(datetime.timezone.utc).date()
    sim = subprocess.run([SIMULATE, "--seed", "13", "--reviews", "300", "--jurisdictions", "12",
                          "--from", (today - datetime.timedelta(days=182)).isoformat(),
                          "--to", (today - datetime.timedelta(days=1)).isoformat()],
                         capture_output=True, text=True, timeout=120, check=True)
    data = DataSet(sim.stdout.splitlines())
    check({UNNAMED, OTHER, "US-TN"} | set(KAFKA_JURISDICTIONS) <= {ev["data"]["jurisdiction"] for ev in data.events},
          "the simulated jurisdictions include those the test names")
    started = time.monotonic()
    send_data_set(b, data, d)
    sent_in = time.monotonic() - started

    def settled():
        return (b.psql("SELECT (SELECT last_fact_id FROM engine_state) = (SELECT coalesce(max(id), 0) FROM facts)")
                == "t" and psql_int(b, "SELECT count(*) FROM outbox WHERE state <> 'delivered'") == 0)
    wait_for(settled, 60, "the engine to evaluate every fact and the outbox to drain", interval=0.2)
    revisions = [json.loads(l) for l in b.psql("SELECT body::text FROM notice_revisions "
                                                "ORDER BY notice_id, revision").splitlines() if l]
    rules = sorted({r["rule"] for r in revisions})
    check(len(rules) >= 3 and "teamwork-law-enforcement" in rules and "recurring-theme" in rules,
          "several rules fired", ">= 3 rules", rules)
    print("    %d events sent in %.1f s; %d revisions of %d notices from rules %s" % (
        len(data.events), sent_in, len(revisions), len({r["id"] for r in revisions}), ", ".join(rules)))
    scan = Scanner(data)

    # the scanner finds canaries where they are by design: the owner's own review
    some = next(ev for ev in data.events if ev["data"]["jurisdiction"] == "US-TN")
    st, _, raw = api(b, "/v1/reviews/US-TN/" + some["data"]["review_id"], tn_sub)
    check(st == 200, "US-TN reads its own review", 200, (st, raw[:300]))
    control = Scanner(data)
    control.scan("control", "US-TN's own review", raw)
    found = [what for _, what, _ in control.findings.get("control", [])]
    kinds = {w.split()[1][len(PREFIX):len(PREFIX) + 3] for w in found if w.startswith("canary")}
    check({"rid", "sum"} <= kinds and any("finalized_at" in w for w in found),
          "the scanner finds the review id, summary and finalized_at canaries in the owner's reply", None,
          control.report())

    # notices, as another jurisdiction reads them: the list, each notice, each as CAP
    st, page = api_json(b, "/v1/notices?limit=500", other_sub)
    check(st == 200 and len(page["items"]) == len({r["id"] for r in revisions}), "every notice listed",
          len({r["id"] for r in revisions}), (st, len(page.get("items", []))))
    scan.scan("notices API", "GET /v1/notices", json.dumps(page), notice=True)
    for n in page["items"]:
        st, _, raw = api(b, "/v1/notices/" + n["id"], other_sub)
        check(st == 200, "GET /v1/notices/" + n["id"], 200, st)
        scan.scan("notices API", "GET /v1/notices/" + n["id"], raw, notice=True)
        st, _, raw = api(b, "/v1/notices/%s?format=cap" % n["id"], other_sub)
        check(st == 200, "the CAP of " + n["id"], 200, st)
        scan.scan("notices API (CAP)", "GET /v1/notices/%s?format=cap" % n["id"], raw, notice=True)

    # webhooks: every request's headers and body
    requests = rx.requests()
    matching = {"/tn-%s-hook" % private: lambda r: True, "/mn-hook": lambda r: r["rule"] == "recurring-theme",
                "/leadership": lambda r: r["status"] != "resolved"}
    for path, matches in matching.items():
        want = {(r["id"], r["revision"]) for r in revisions if matches(r)}
        got = {(json.loads(r["body"])["data"]["id"], json.loads(r["body"])["data"]["revision"])
               for r in requests if r["path"] == path}
        check(want and got == want, "webhook %s received every matching revision" % path, len(want), len(got))
    for i, r in enumerate(requests):
        where = "webhook request %d to %s" % (i, r["path"])
        scan.scan("webhooks (headers)", where, json.dumps(r["headers"]), notice=True)
        scan.scan("webhooks (body)", where, r["body"], notice=True)

    # email: the raw message, each decoded part and header, the envelope
    mails = sorted(glob.glob(os.path.join(smtp.dir, "*.eml")))
    ids = {m["Message-ID"] for _, m in smtp.messages()}
    check(len(ids) == len(revisions), "an email for every revision", len(revisions), len(ids))
    for path in mails:
        where = "email " + os.path.basename(path)
        with open(path, "rb") as f:
            raw = f.read()
        scan.scan("email (raw .eml)", where, raw, notice=True)
        m = email.message_from_bytes(raw, policy=email.policy.default)
        scan.scan("email (decoded headers)", where, "\n".join("%s: %s" % (k, v) for k, v in m.items()),
                  notice=True)
        for part in m.walk():
            if not part.is_multipart():
                scan.scan("email (decoded parts)", "%s %s part" % (where, part.get_content_type()),
                          part.get_content(), notice=True)
        with open(path[:-4] + ".json") as f:
            scan.scan("email (envelope)", where, f.read())

    # Kafka: every topic but the case systems' input and its DLQ
    bootstrap = b.read("kafka.bootstrap").strip()
    r = subprocess.run(["kcat", "-b", bootstrap, "-L", "-J"], capture_output=True, text=True, timeout=60)
    topics = sorted(t["topic"] for t in json.loads(r.stdout)["topics"] if t["topic"] not in INPUT_TOPICS
                    and not t["topic"].startswith("__"))
    check(topics and all(t.startswith("notices.") or t == "safety-notices" for t in topics),
          "the broker's topics are the notice topics", None, topics)
    messages = 0
    for topic in topics:
        r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
                           capture_output=True, text=True, timeout=120)
        for line in r.stdout.splitlines():
            msg = json.loads(line)
            where = "Kafka %s [%d] offset %d" % (topic, msg["partition"], msg["offset"])
            scan.scan("Kafka (key)", where, msg.get("key") or "", notice=True)
            scan.scan("Kafka (headers)", where, json.dumps(msg.get("headers")), notice=True)
            scan.scan("Kafka (value)", where, msg.get("payload") or "", notice=True)
            messages += 1
    check(messages == len(revisions), "Kafka holds every revision", len(revisions), messages)

    # statistics, as another jurisdiction reads them; one window narrow enough to hold one review
    until = data.events[len(data.events) // 2]["data"]["finalized_at"]
    for query in ("", "?window=180d", "?window=1h&until=" + until):
        st, _, raw = api(b, "/v1/stats/themes" + query, other_sub)
        check(st == 200, "GET /v1/stats/themes" + query, 200, (st, raw[:300]))
        # the reply repeats the until asked for, and the from it gives (days included)
        scan.scan("stats", "GET /v1/stats/themes" + query, raw.replace(until.encode(), b"<until asked for>"))

    # another jurisdiction's tokens asking for US-TN's data
    tn_ids = [ev["data"]["review_id"] for ev in data.events if ev["data"]["jurisdiction"] == "US-TN"][:5]
    absent = api(b, "/v1/reviews/US-TN/%sabsent" % PREFIX, other_sub)
    for who, token in (("subscriber", other_sub), ("emitter", other_emitter)):
        for rid in tn_ids:
            where = "GET /v1/reviews/US-TN/%s with %s's %s token" % (rid, OTHER, who)
            st, _, raw = api(b, "/v1/reviews/US-TN/" + rid, token)
            if st not in (403, 404) or raw.replace(rid.encode(), b"") != absent[2].replace(
                    ("%sabsent" % PREFIX).encode(), b""):
                scan.add("API to another jurisdiction", where, "an answer", "%s: %d %r, not what a review "
                         "that does not exist gets (%d %r)" % (where, st, raw[:200], absent[0], absent[2][:200]))
            scan.scan("API to another jurisdiction", where, raw.replace(rid.encode(), b"<id asked for>"))
    st, listing = api_json(b, "/v1/subscriptions", other_sub)
    check(st == 200, "%s lists its subscriptions" % OTHER, 200, st)
    if any(s["subscriber"] != OTHER for s in listing["items"]) or private in json.dumps(listing):
        scan.add("API to another jurisdiction", "GET /v1/subscriptions", "another's subscriptions",
                 "GET /v1/subscriptions with %s's token shows another jurisdiction's: %s" % (OTHER, listing))
    scan.scan("API to another jurisdiction", "GET /v1/subscriptions with %s's token" % OTHER, json.dumps(listing))
    others = [(path, sub) for path, sub in hooks.items() if sub["subscriber"] == "US-TN"] + [("email", mail)]
    for what, sub in others:
        for method, path in (("GET", "/v1/subscriptions/%d" % sub["id"]),
                             ("POST", "/v1/subscriptions/%d/test" % sub["id"]),
                             ("GET", "/v1/subscriptions?subscriber=US-TN")):
            st, _, raw = api(b, path, other_sub, method)
            where = "%s %s with %s's token" % (method, path, OTHER)
            if (st not in (403, 404) and not (st == 200 and json.loads(raw).get("items") == [])) \
                    or private.encode() in raw:
                scan.add("API to another jurisdiction", where, "an answer",
                         "%s: %d %r (US-TN's %s)" % (where, st, raw[:300], what))
            scan.scan("API to another jurisdiction", where, raw)

    # the digest a US-TN leader would get, in every form, for this week and the ones before
    for weeks in range(0, 27, 4):
        day = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(weeks=weeks)).date()
        for form in ("text", "html", "json"):
            path = "/v1/subscriptions/%d/digest-preview?format=%s&period=%s" % (digest_sub["id"], form, day)
            st, _, raw = api(b, path, tn_sub)
            check(st == 200, "GET " + path, 200, (st, raw[:300]))
            # a digest names its period's bounds (days), which are not a review's
            scan.scan("digest", path, raw)

    # the dashboard, as admin and as another jurisdiction's subscriber sees it
    def dashboard_page(path, cookie):
        host, port = b.address.rsplit(":", 1)
        conn = httpclient.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", path, headers={"Cookie": "sn_session=" + cookie})
        resp = conn.getresponse()
        return resp.status, resp.read()

    for who, token in (("admin", admin), (OTHER + " subscriber", other_sub)):
        host, port = b.address.rsplit(":", 1)
        conn = httpclient.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/dashboard/login", body=urllib.parse.urlencode({"token": token}),
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Origin": "http://" + b.address})
        resp = conn.getresponse()
        resp.read()
        cookie = (resp.getheader("Set-Cookie") or "").split(";")[0].partition("=")[2]
        check(resp.status == 303 and cookie, "dashboard login as " + who, 303, resp.status)
        paths = ["/dashboard", "/dashboard/delivery"] + ["/dashboard/notices/" + n["id"] for n in page["items"]]
        for path in paths:
            st, raw = dashboard_page(path, cookie)
            check(st in (200, 403, 404), "GET %s as %s" % (path, who), 200, st)
            scan.scan("dashboard", "%s as %s" % (path, who), raw, notice=True)

    # metrics, after all of the above
    st, _, raw = http("GET", b.url("/metrics"))
    check(st == 200, "GET /metrics", 200, st)
    scan.scan("metrics", "GET /metrics", raw)

    # logs: every stderr line at info level and above (the JSON lines); stdout
    info = debug_hits = 0
    for line in b.stderr().splitlines():
        try:
            level = json.loads(line).get("level")
        except ValueError:
            level = None
        if level == "debug":
            debug_hits += bool(CANARY_RE.search(line))
            continue
        info += 1
        scan.scan("log (info and above)", "stderr: %s" % line[:80], line)
    check(info > 10, "the broker logged at info level", "> 10 lines", info)
    with open(b.stdout_path, "rb") as f:
        scan.scan("log (info and above)", "stdout", f.read())
    pg_hits = 0
    for path in glob.glob(os.path.join(b.dir, "*.log")):
        if os.path.basename(path).startswith("postgresql"):
            with open(path, "rb") as f:
                pg_hits += len(CANARY_RE.findall(f.read().decode("utf-8", "replace")))

    summary = ", ".join("%s %d" % (s, n[0]) for s, n in scan.scanned.items())
    print("    scanned: " + summary)
    print("    (not checked: %d debug log lines and %d PostgreSQL log mentions hold a canary)"
          % (debug_hits, pg_hits))
    check(not scan.findings, "no canary, finalized_at or unnamed jurisdiction anywhere published:\n"
          + scan.report())


def test_stats_do_not_date_a_review():
    """GET /v1/stats/themes takes `until` to the millisecond and shows counts
    from 3 up exactly: moving `until` across a review's finalized_at changes the
    reply, so another jurisdiction finds every review's exact finalized_at by
    bisection (about 22 requests per hour searched), though no reply holds it."""
    b = Broker(env={"SN_RULES_TICK": "0s"}).start()
    b.wait_ready()
    admin = b.read("admin.token").strip()
    other = token_for(b, "subscriber", OTHER)
    finalized = "2026-03-04T15:26:53Z"
    # 9 reviews of US-TN over the week before, and the one whose time is sought
    for i in range(10):
        t = "2026-03-0%dT%02d:17:42Z" % (1 + i % 3, 8 + i) if i < 9 else finalized
        st, _, body = post(b, admin, {"specversion": "1.0", "type": "org.npcs.review.completed.v1",
                                      "source": "urn:npcs:jurisdiction:US-TN", "id": "ev-%d" % i, "time": t,
                                      "data": {"review_id": "R-%d" % i, "jurisdiction": "US-TN", "finalized_at": t,
                                               "incident": {"type": "fatality", "cause": "suid", "month": "2026-01",
                                                            "child_age_band": "0-3",
                                                            "prior_agency_involvement": True},
                                               "improvement_opportunities": [{"theme": "workload",
                                                                              "seips_domain": "tasks",
                                                                              "priority": "low"}],
                                               "family_needs": []}})
        check(st == 202, "review %d accepted" % i, 202, (st, body))

    def reply(until_ms):
        until = datetime.datetime.fromtimestamp(until_ms / 1000, datetime.timezone.utc)
        query = "window=30d&until=" + until.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (until_ms % 1000)
        st, _, raw = api(b, "/v1/stats/themes?" + query, other)
        check(st == 200, "GET /v1/stats/themes?" + query, 200, (st, raw[:300]))
        doc = json.loads(raw)
        return json.dumps({k: v for k, v in doc.items() if k not in ("from", "until")}, sort_keys=True)

    # what another jurisdiction knows: the review was finalized on 4 March; bisect the day
    lo = int(datetime.datetime(2026, 3, 4, tzinfo=datetime.timezone.utc).timestamp() * 1000)
    hi = lo + 86400 * 1000
    before, requests = reply(lo), 1
    if reply(hi) != before:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            requests += 1
            if reply(mid) == before:
                lo = mid
            else:
                hi = mid
    found = datetime.datetime.fromtimestamp(hi / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    check(found != finalized, "another jurisdiction cannot find a review's exact finalized_at through "
          "GET /v1/stats/themes: %d requests moving `until` across the day found it" % requests,
          "not " + finalized, found)
