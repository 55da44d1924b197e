"""GET /v1/stats/themes: per improvement-opportunity theme, reviews,
opportunities, share of reviews and jurisdictions over a window of event time,
with small cells suppressed. Every expected figure is counted here, in Python,
from the events the test sent. An admin's window is exact, (until - window,
until]; anyone else's is whole UTC months, [first instant of the month holding
until - window, first instant of the month after the one holding until), so
that no reply dates a review more finely than a month."""
import datetime
import decimal
import json
import os
import signal
import subprocess
import time
import urllib.parse

from harness import BIN, Broker, check, http, wait_for
from ingest_util import create_token, event, post, review

SIMULATE = os.path.join(os.path.dirname(os.path.abspath(BIN)), "sn-simulate")
UNTIL = "2026-06-30T00:00:00Z"


def started(**kw):
    b = Broker(**kw).start()
    b.wait_ready()
    return b


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(t):
    t = t.astimezone(datetime.timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond // 1000:
        text += ".%03d" % (t.microsecond // 1000)
    return text + "Z"


def stats(b, token, **query):
    """(status, headers, parsed body) of GET /v1/stats/themes?query."""
    path = "/v1/stats/themes"
    if query:
        path += "?" + urllib.parse.urlencode(query)
    headers = {"Authorization": "Bearer " + token} if token else {}
    status, resp_headers, raw = http("GET", b.url(path), headers=headers)
    return status, resp_headers, json.loads(raw) if raw else None


def month_floor(t):
    """The first instant (UTC) of the month holding t."""
    t = t.astimezone(datetime.timezone.utc)
    return datetime.datetime(t.year, t.month, 1, tzinfo=datetime.timezone.utc)


def next_month(t):
    """The first instant (UTC) of the month after the one holding t."""
    f = month_floor(t)
    return datetime.datetime(f.year + f.month // 12, f.month % 12 + 1, 1, tzinfo=datetime.timezone.utc)


def expected(current, window, start, end, min_cell=3, by_month=False):
    """The reply, counted from current: {(jurisdiction, review_id): (finalized_at,
    [theme of each improvement opportunity])}, the latest version of each
    review. start and end are the exact ends, until - window and until. An
    admin's review counts in (start, end]; with by_month (anyone else), the ends
    are rounded out to whole UTC months and a review counts in [start, end)."""
    if by_month:
        start, end = month_floor(start), next_month(end)
        inside = {k: v for k, v in current.items() if start <= v[0] < end}
    else:
        inside = {k: v for k, v in current.items() if start < v[0] <= end}
    themes = {}
    for (jurisdiction, review_id), (_, io_themes) in inside.items():
        for theme in io_themes:
            t = themes.setdefault(theme, {"reviews": set(), "ios": 0, "jurisdictions": set()})
            t["reviews"].add((jurisdiction, review_id))
            t["ios"] += 1
            t["jurisdictions"].add(jurisdiction)

    def cell(n):
        return n if n >= min_cell else "<%d" % min_cell

    rows = []
    for theme, t in themes.items():
        counts = (len(t["reviews"]), t["ios"], len(t["jurisdictions"]))
        share = None
        if all(n >= min_cell for n in counts):
            share = float((decimal.Decimal(counts[0]) / decimal.Decimal(len(inside))).quantize(
                decimal.Decimal("0.001"), rounding=decimal.ROUND_HALF_UP))
        rows.append({"theme": theme, "reviews": cell(counts[0]),
                     "improvement_opportunities": cell(counts[1]), "share_of_reviews": share,
                     "jurisdictions": cell(counts[2])})
    # suppressed review counts tie: their order must not tell 1 from 2
    rows.sort(key=lambda r: (-(r["reviews"] if isinstance(r["reviews"], int) else 0), r["theme"]))
    return {"window": window, "from": rfc3339(start), "until": rfc3339(end),
            "granularity": "month" if by_month else "millisecond", "reviews": cell(len(inside)),
            "jurisdictions": cell(len({j for j, _ in inside})), "themes": rows}


def new_token(b, role, jurisdiction):
    """A token that works: the broker loads a new token into its cache when the
    database announces it, a moment after the 201."""
    token = create_token(b, role, jurisdiction)
    wait_for(lambda: stats(b, token)[0] == 200, 10, "the new %s token to work" % jurisdiction)
    return token


def io(theme):
    return {"theme": theme, "seips_domain": "organization", "priority": "high"}


# (jurisdiction, event id, review id, finalized_at, themes of its improvement
# opportunities), posted in this order. The review() default family needs
# include economic_support: a family need is no improvement opportunity.
FIXED = [
    ("US-TN", "tn-1", "R-1", "2026-03-01T10:00:00Z",
     ["teamwork_coordination", "teamwork_coordination", "economic_support"]),
    ("US-TN", "tn-2", "R-2", "2026-01-15T09:30:00Z",
     ["teamwork_coordination", "information_sharing"]),
    ("US-GA", "ga-1", "R-1", "2025-12-01T12:00:00Z", ["teamwork_coordination", "economic_support"]),
    ("US-GA", "ga-2", "R-2", "2026-05-01T08:00:00-04:00", ["economic_support", "assessment"]),
    ("US-OH", "oh-1", "R-1", "2025-09-10T00:00:00Z", ["teamwork_coordination", "economic_support",
                                                      "workload"]),
    # amended: the first version's themes must not count (policy would reach 3)
    ("US-OH", "oh-2a", "R-2", "2026-02-01T00:00:00Z",
     ["policy", "safety_planning", "safety_planning", "supervision"]),
    ("US-OH", "oh-2b", "R-2", "2026-02-20T00:00:00Z", ["information_sharing", "economic_support"]),
    ("US-OH", "oh-3", "R-3", "2026-04-01T00:00:00Z", ["policy", "information_sharing"]),
    # at an admin's window's end (counts) and start (does not: the window is (from,
    # until]); a reader's window of whole months, from 1 June 2025, holds both
    ("US-CO", "co-1", "R-1", UNTIL, ["teamwork_coordination", "policy"]),
    ("US-CO", "co-2", "R-2", "2025-06-30T00:00:00Z", ["teamwork_coordination", "training"]),
    # outside the 365 days before UNTIL
    ("US-TN", "tn-3", "R-3", "2024-12-01T00:00:00Z", ["teamwork_coordination", "economic_support"]),
    ("US-GA", "ga-3", "R-3", "2026-07-15T00:00:00Z", ["economic_support", "technology"]),
]


def post_fixed(b):
    """Posts FIXED with one emitter token per jurisdiction; returns the current
    version of each review, as expected() takes it."""
    tokens = {}
    current = {}
    for jurisdiction, event_id, review_id, finalized_at, themes in FIXED:
        if jurisdiction not in tokens:
            tokens[jurisdiction] = new_token(b, "emitter", jurisdiction)
        data = review(jurisdiction, review_id, finalized_at,
                      improvement_opportunities=[io(t) for t in themes])
        status, _, body = post(b, tokens[jurisdiction], event(jurisdiction, event_id, data,
                                                              time=finalized_at))
        check(status == 202, "event %s accepted" % event_id, 202, (status, body))
        current[(jurisdiction, review_id)] = (parse_time(finalized_at), themes)
    return current


def test_themes_over_a_window_with_small_cells_suppressed():
    b = started()
    current = post_fixed(b)
    reader = new_token(b, "subscriber", "US-TN")
    admin = b.read("admin.token").strip()
    until = parse_time(UNTIL)
    year = datetime.timedelta(days=365)
    status, headers, got = stats(b, reader, window="365d", until=UNTIL)
    want = expected(current, "365d", until - year, until, by_month=True)
    check(status == 200 and headers["Content-Type"] == "application/json",
          "200 application/json for any valid token", 200, (status, headers["Content-Type"], got))
    check(got == want, "the reply matches the figures counted from the events sent", want, got)
    # the same figures, written out by hand, so that a slip in expected() shows:
    # whole months from 1 June 2025 up to 1 July 2026, so CO's review of 30 June
    # 2025 counts too
    hand = {"window": "365d", "from": "2025-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z",
            "granularity": "month", "reviews": 9, "jurisdictions": 4, "themes": [
                {"theme": "teamwork_coordination", "reviews": 6, "improvement_opportunities": 7,
                 "share_of_reviews": 0.667, "jurisdictions": 4},
                {"theme": "economic_support", "reviews": 5, "improvement_opportunities": 5,
                 "share_of_reviews": 0.556, "jurisdictions": 3},
                {"theme": "information_sharing", "reviews": 3, "improvement_opportunities": 3,
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "assessment", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "policy", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "training", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "workload", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"}]}
    check(got == hand, "the hand count (whole months)", hand, got)

    # an admin's window is exact, (until - 365 days, until]
    status, _, got = stats(b, admin, window="365d", until=UNTIL)
    want = expected(current, "365d", until - year, until)
    check(status == 200 and got == want, "an admin's exact window, counted from the events sent",
          want, got)
    hand = {"window": "365d", "from": "2025-06-30T00:00:00Z", "until": UNTIL,
            "granularity": "millisecond", "reviews": 8, "jurisdictions": 4, "themes": [
                {"theme": "economic_support", "reviews": 5, "improvement_opportunities": 5,
                 "share_of_reviews": 0.625, "jurisdictions": 3},
                {"theme": "teamwork_coordination", "reviews": 5, "improvement_opportunities": 6,
                 "share_of_reviews": 0.625, "jurisdictions": 4},
                {"theme": "information_sharing", "reviews": 3, "improvement_opportunities": 3,
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "assessment", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "policy", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"},
                {"theme": "workload", "reviews": "<3", "improvement_opportunities": "<3",
                 "share_of_reviews": None, "jurisdictions": "<3"}]}
    check(got == hand, "the hand count (an admin's exact window)", hand, got)

    # until moves the window: GA's July review comes in, OH's September one stays
    later = parse_time("2026-07-31T00:00:00Z")
    for who, token, by_month in (("a reader", reader, True), ("an admin", admin, False)):
        status, _, got = stats(b, token, until="2026-07-31T00:00:00Z")
        want = expected(current, "365d", later - year, later, by_month=by_month)
        check(status == 200 and got == want, "until moves %s's window (default window 365d)" % who,
              want, got)
        check(got["reviews"] == 9 and got["themes"][0] == {
            "theme": "economic_support", "reviews": 6, "improvement_opportunities": 6,
            "share_of_reviews": 0.667, "jurisdictions": 3}, "GA's July review counts", None, got)
    # other windows and units; an offset in until. 90 days before until is 1
    # April 2026, the first instant of a month and OH's review R-3's time: in a
    # reader's window [from, until), not in an admin's (from, until]
    for window, days in (("52w", 364), ("90d", 90), ("2160h", 90), ("3660d", 3660)):
        for token, by_month in ((reader, True), (admin, False)):
            status, _, got = stats(b, token, window=window, until="2026-06-29T20:00:00-04:00")
            want = expected(current, window, until - datetime.timedelta(days=days), until,
                            by_month=by_month)
            check(status == 200 and got == want, "window=%s (%s)" % (window, got.get("granularity")),
                  want, got)
    status, _, got = stats(b, admin, window="90d", until=UNTIL)
    check(got["from"] == "2026-04-01T00:00:00Z" and got["reviews"] == "<3",
          "an admin's 90 days: GA's R-2 and CO's R-1, not OH's R-3 (1 April)", None, got)
    status, _, got = stats(b, reader, window="90d", until=UNTIL)
    check(got["from"] == "2026-04-01T00:00:00Z" and got["until"] == "2026-07-01T00:00:00Z"
          and got["reviews"] == 3, "a reader's 90 days are April to June, with OH's R-3 (1 April)",
          None, got)
    end = parse_time("2026-03-01T10:00:00.500Z")
    status, _, got = stats(b, admin, window="1h", until="2026-03-01T10:00:00.500Z")
    want = expected(current, "1h", end - datetime.timedelta(hours=1), end)
    check(status == 200 and got == want and got["reviews"] == "<3"
          and got["from"] == "2026-03-01T09:00:00.500Z",
          "one hour, milliseconds kept for an admin; one review is a small cell", want, got)
    status, _, got = stats(b, reader, window="1h", until="2026-03-01T10:00:00.500Z")
    want = expected(current, "1h", end - datetime.timedelta(hours=1), end, by_month=True)
    check(status == 200 and got == want and got["reviews"] == "<3"
          and (got["from"], got["until"]) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
          "one hour is the month of March for a reader", want, got)
    for token, by_month in ((reader, True), (admin, False)):
        status, _, got = stats(b, token, until="2020-01-01T00:00:00Z")
        check(status == 200 and got["themes"] == [] and got["reviews"] == "<3"
              and got["jurisdictions"] == "<3", "an empty window: no themes", None, got)

    # a review at the first instant of a month (R-3 of US-OH, 1 April 2026)
    # counts in that month's windows, and in no window of the month before
    def themes(token, until, window="1h"):
        status, _, got = stats(b, token, window=window, until=until)
        end = parse_time(until)
        want = expected(current, window, end - datetime.timedelta(hours=1), end, by_month=True)
        check(status == 200 and got == want, "until=%s window=%s" % (until, window), want, got)
        return [t["theme"] for t in got["themes"]]
    for until in ("2026-03-15T00:00:00Z", "2026-03-31T23:59:59.999Z", "2026-03-31T00:00:00Z"):
        check("policy" not in themes(reader, until), "R-3 is not in March (until=%s)" % until)
    for until in ("2026-04-01T01:00:00Z", "2026-04-15T00:00:00Z", "2026-04-30T23:59:59.999Z"):
        check("policy" in themes(reader, until), "R-3 is in April (until=%s)" % until)
    check("policy" not in themes(reader, "2026-05-01T01:00:00Z"), "R-3 is not in May")

    # nothing finer than a month: every until in June gives a reader the same reply
    replies = [stats(b, reader, window="30d", until=u)[2] for u in (
        "2026-06-01T00:00:00Z", "2026-06-15T13:37:00.123Z", "2026-06-30T23:59:59.999Z")]
    check(replies[0]["from"] == "2026-05-01T00:00:00Z" and replies[0]["until"] == "2026-07-01T00:00:00Z"
          and all(r == replies[0] for r in replies), "one reply for every until in June", None,
          replies)

    # now by default: for an admin, now; for a reader, the start of next month
    status, _, got = stats(b, admin)
    now = datetime.datetime.now(datetime.timezone.utc)
    end = parse_time(got["until"])
    check(status == 200 and got["window"] == "365d" and abs((now - end).total_seconds()) < 60,
          "until is now by default", rfc3339(now), got)
    check(got == expected(current, "365d", end - year, end),
          "the default window is the 365 days before now", None, got)
    before = datetime.datetime.now(datetime.timezone.utc)
    status, _, got = stats(b, reader)
    after = datetime.datetime.now(datetime.timezone.utc)
    wants = [expected(current, "365d", t - year, t, by_month=True) for t in (before, after)]
    check(status == 200 and got in wants and got["until"] in (rfc3339(next_month(before)),
                                                               rfc3339(next_month(after))),
          "a reader's default window: the months from 365 days ago to this one", wants, got)


def test_privacy_min_cell_is_configurable():
    b = started(env={"SN_PRIVACY_MIN_CELL": "6"})
    current = post_fixed(b)
    admin = b.read("admin.token").strip()
    until = parse_time(UNTIL)
    status, _, got = stats(b, admin, until=UNTIL)
    want = expected(current, "365d", until - datetime.timedelta(days=365), until, min_cell=6)
    check(status == 200 and got == want, "cells below 6 are '<6'", want, got)
    teamwork = [t for t in got["themes"] if t["theme"] == "teamwork_coordination"]
    check(teamwork == [{"theme": "teamwork_coordination", "reviews": "<6",
                        "improvement_opportunities": 6, "share_of_reviews": None,
                        "jurisdictions": "<6"}], "teamwork's 6 opportunities show", None, teamwork)
    names = [t["theme"] for t in got["themes"]]
    check(names == sorted(names), "every review count is suppressed: sorted by theme alone",
          sorted(names), names)


def test_auth_and_bad_parameters():
    b = started()
    admin = b.read("admin.token").strip()
    status, headers, body = stats(b, None)
    check(status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""), "no token: 401", 401,
          (status, body))
    status, _, _ = stats(b, "sn_" + "A" * 43)
    check(status == 401, "unknown token: 401", 401, status)

    def bad(query, parameter, what):
        status, headers, body = stats(b, admin, **query)
        check(status == 400 and headers["Content-Type"] == "application/problem+json"
              and [e["parameter"] for e in body.get("errors", [])] == [parameter]
              and body["errors"][0]["message"], "%s: 400 naming %s" % (what, parameter),
              (400, parameter), (status, body))

    bad({"window": "abc"}, "window", "window=abc")
    bad({"window": ""}, "window", "an empty window")
    bad({"window": "30m"}, "window", "minutes are not a unit of the window")
    bad({"window": "10s"}, "window", "nor are seconds")
    bad({"window": "0h"}, "window", "below 1h")
    bad({"window": "3661d"}, "window", "above 3660d")
    bad({"window": "-5d"}, "window", "a negative window")
    bad({"window": "99999999999999999999d"}, "window", "an overflowing window")
    bad({"until": "yesterday"}, "until", "until=yesterday")
    bad({"until": "2026-13-01T00:00:00Z"}, "until", "month 13")
    bad({"until": "0001-01-02T00:00:00Z"}, "until", "a window reaching before year 1")
    bad({"foo": "1"}, "foo", "an unknown parameter")
    bad({"window": "365d", "jurisdiction": "US-TN"}, "jurisdiction", "another unknown parameter")
    status, _, body = http("GET", b.url("/v1/stats/themes?window=30d&window=60d"),
                           headers={"Authorization": "Bearer " + admin})
    body = json.loads(body)
    check(status == 400 and body["errors"][0]["parameter"] == "window",
          "a parameter given twice: 400", 400, (status, body))
    status, _, _ = stats(b, admin, window="3660d", until="2026-01-01")
    check(status == 200, "the widest window and a bare date are fine", 200, status)


def test_503_while_the_database_hangs():
    b = started(env={"SN_DATABASE_QUERY_TIMEOUT": "1s"})
    admin = b.read("admin.token").strip()
    check(stats(b, admin)[0] == 200, "200 while the database answers")
    pids = [int(p) for p in b.psql("SELECT pid FROM pg_stat_activity WHERE application_name = "
                                   "'sn-broker' AND pid <> pg_backend_pid()").split()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # alive but silent
    try:
        started_at = time.monotonic()
        status, headers, body = stats(b, admin)
        check(status == 503 and headers.get("Retry-After") == "1" and body["status"] == 503,
              "503 with Retry-After while the database hangs", 503, (status, body))
        check(time.monotonic() - started_at < 5, "answered within the query timeout")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: stats(b, admin)[0] == 200, 20, "200 again once the broker has reconnected")


def test_simulated_partnership():
    b = started()
    admin = b.read("admin.token").strip()
    r = subprocess.run([SIMULATE, "--seed", "7", "--reviews", "300", "--jurisdictions", "12",
                        "--from", "2025-01-01", "--to", "2025-12-31"], capture_output=True,
                       timeout=120)
    check(r.returncode == 0, "sn-simulate runs", 0, (r.returncode, r.stderr[-500:]))
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    check(len(events) == 300, "300 events", 300, len(events))
    status, _, body = post(b, admin, events, "application/cloudevents-batch+json")
    outcomes = [item.get("outcome") for item in body["results"]] if status == 207 else body
    check(status == 207 and outcomes == ["accepted"] * 300, "the batch is accepted",
          (207, "all accepted"), (status, outcomes))
    current = {}
    for e in events:
        d = e["data"]
        current[(d["jurisdiction"], d["review_id"])] = (
            parse_time(d["finalized_at"]), [o["theme"] for o in d["improvement_opportunities"]])
    check(len(current) == 300, "300 distinct reviews", 300, len(current))

    year_end = parse_time("2026-01-01T00:00:00Z")
    status, _, got = stats(b, admin, window="365d", until="2026-01-01T00:00:00Z")
    want = expected(current, "365d", year_end - datetime.timedelta(days=365), year_end)
    check(status == 200 and got == want, "the simulated year, counted in Python", want, got)
    check(got["reviews"] == 300 and got["jurisdictions"] == 12, "every review and jurisdiction",
          (300, 12), (got["reviews"], got["jurisdictions"]))
    opportunities = sum(len(v[1]) for v in current.values())
    check(sum(t["improvement_opportunities"] for t in got["themes"]) == opportunities,
          "the themes' opportunities add up to all of them", opportunities, got["themes"])
    for window, until in (("90d", "2025-10-01T00:00:00Z"), ("4w", "2025-03-15T12:00:00Z"),
                          ("72h", "2025-07-04T00:00:00Z")):
        end = parse_time(until)
        status, _, got = stats(b, admin, window=window, until=until)
        want = expected(current, window, end - datetime.timedelta(
            hours=int(window[:-1]) * {"d": 24, "w": 168, "h": 1}[window[-1]]), end)
        check(status == 200 and got == want, "window=%s until=%s" % (window, until), want, got)
