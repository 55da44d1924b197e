"""The rule engine through the real binary: a fixed data set gives exactly the
expected notice revisions; every revision's counts agree with SQL computed
here over the stored facts; live equals a backtest of the same facts; a
leader killed with -9 mid-stream is replaced within 10 s with no revision
twice and none missing; a bad rules reload keeps the running rules; the
notices API (filters, cursor, CAP validated against the OASIS XSD)."""
import hashlib
import json
import re
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from harness import ROOT, SNCTL, Broker, Session, check, http, wait_for
from ingest_util import create_token, event, post, review
from rules_util import (EMIT, EVENT_BODY, RULES_DIR, SIMULATE, api, caught_up, post_simulated, snctl,
                        sql_counts, stored_revisions)

# the project's shared reference, else the copy kept in tests/reference/
CAP_XSD = next(p for p in (os.path.join(os.path.dirname(ROOT), "shared", "reference", "CAP-v1.2.xsd"),
                           os.path.join(ROOT, "tests", "reference", "CAP-v1.2.xsd")) if os.path.exists(p))
DAY = 86400


def started(**kw):
    b = Broker(**kw).start()
    b.wait_ready()
    return b


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def teamwork_review(j, rid, t, with_teamwork=True):
    ios = [{"theme": "assessment", "seips_domain": "tasks", "priority": "medium"}]
    if with_teamwork:
        ios.insert(0, {"theme": "teamwork_coordination", "partner": "law_enforcement",
                       "seips_domain": "organization", "priority": "high",
                       "summary": "CANARY-%s details of the case" % rid})
    return review(j, rid, finalized_at=iso(t), improvement_opportunities=ios, family_needs=[])


def test_fixed_data_set_gives_the_expected_revisions():
    # event time only (no wall-clock tick): the data is from 2026
    b = started(env={"SN_RULES_TICK": "0s", "SN_PRIVACY_UNNAMED_JURISDICTIONS": "US-OK-CHEROKEE"})
    admin = b.read("admin.token").strip()
    t0 = 1767268800  # 2026-01-01T12:00:00Z
    juris = ["US-TN", "US-TN", "US-MN", "US-MN", "US-CA", "US-CA", "US-GA", "US-GA", "US-OK-CHEROKEE",
             "US-OK-CHEROKEE"]
    for i, j in enumerate(juris):
        st, _, body = post(b, admin, event(j, "ev-%d" % i, teamwork_review(j, "R-%d" % i, t0 + i * DAY)))
        check(st == 202, "review %d accepted" % i, 202, (st, body))
    # R-9 amended on day 10: no teamwork any more (9 reviews, 5 jurisdictions: advisory)
    st, _, _ = post(b, admin, event("US-OK-CHEROKEE", "ev-9b",
                                    teamwork_review("US-OK-CHEROKEE", "R-9", t0 + 10 * DAY, False)))
    check(st == 202, "amendment accepted")
    # a later review of another theme moves the clock past the update's due time
    st, _, _ = post(b, admin, event("US-TN", "ev-late", review(
        "US-TN", "R-late", finalized_at=iso(t0 + 20 * DAY),
        improvement_opportunities=[{"theme": "workload", "seips_domain": "tasks", "priority": "low"}],
        family_needs=[])))
    check(st == 202, "late review accepted")
    wait_for(lambda: caught_up(b), 20, "the engine to evaluate every fact")

    st, listing = api(b, "/v1/notices?rule=teamwork-law-enforcement")
    check(st == 200 and len(listing["items"]) == 1, "one teamwork notice", 1, listing)
    nid = listing["items"][0]["id"]
    st, notice = api(b, "/v1/notices/" + nid)
    decided = {r["revision"]: r["issued_at"] for r in stored_revisions(b) if r["id"] == nid}
    got = [(r["revision"], r["status"], r["severity"], r["counts"]["reviews"], r["counts"]["jurisdictions"],
            decided[r["revision"]]) for r in notice["revisions"]]
    # published: the wall-clock time the broker issued each, never a review's time
    now = time.time()
    check(all(iso(now - 120) <= r["issued_at"] <= iso(now + 5) for r in notice["revisions"]),
          "issued_at is when the broker issued the revision", None, [r["issued_at"] for r in notice["revisions"]])
    # issued at the 5th review (day 4: 5 reviews, 3 jurisdictions); escalated at
    # the 10th (day 9: 10 from 5); R-9's amendment (day 10) leaves 9 from 5,
    # below the warning: updated once repeat_interval (7d) after day 9, at day 16
    want = [(1, "issued", "advisory", 5, 3, iso(t0 + 4 * DAY)),
            (2, "escalated", "warning", 10, 5, iso(t0 + 9 * DAY)),
            (3, "updated", "advisory", 9, 5, iso(t0 + 16 * DAY))]
    check(got == want, "the teamwork notice's revisions", want, got)
    latest = notice["revisions"][-1]
    check(latest == {k: v for k, v in notice.items() if k != "revisions"}, "the notice is its latest revision")
    check(latest["jurisdictions"] == ["US-CA", "US-GA", "US-MN", "US-TN"] and latest["unnamed_jurisdictions"] == 1,
          "the unnamed jurisdiction is counted, not named", None, latest)
    check(latest["breakdown"]["partner"] == {"law_enforcement": 9} and
          latest["breakdown"]["cause"] == {"suid": 9}, "breakdown in reviews", None, latest["breakdown"])
    check(latest["window"] == {"from": "2025-07", "to": "2026-01", "length": "180 days"},
          "the window in months", None, latest["window"])
    text = json.dumps(notice)
    check("CANARY" not in text and "R-1" not in text and "US-OK-CHEROKEE" not in text,
          "no free text, review id or unnamed jurisdiction in the notice", None, text[:500])
    # outbox: one row per revision, to the rule's topic
    outbox = b.psql("SELECT string_agg(revision || ':' || target, ',' ORDER BY revision) FROM outbox "
                    "WHERE notice_id = '%s'" % nid)
    topic = "notices.teamwork_coordination.law_enforcement"
    check(outbox == "1:%s,2:%s,3:%s" % (topic, topic, topic), "outbox rows with the revisions", None, outbox)
    # no spike, no SUID economic notice: those facts are not in this data set
    st, all_notices = api(b, "/v1/notices")
    rules = sorted(n["rule"] for n in all_notices["items"])
    check(rules == ["teamwork-law-enforcement"], "only the teamwork rule fired", None, rules)

    # CAP: valid against the OASIS schema; Update for an updated revision,
    # with references to both earlier revisions
    st, xml = api(b, "/v1/notices/%s?format=cap" % nid)
    check(st == 200, "CAP rendering", 200, (st, xml[:300]))
    path = os.path.join(b.dir, "notice.cap.xml")
    with open(path, "wb") as f:
        f.write(xml)
    r = subprocess.run(["xmllint", "--noout", "--schema", CAP_XSD, path], capture_output=True, text=True)
    check(r.returncode == 0, "the CAP alert validates against CAP-v1.2.xsd", 0, r.stderr)
    text = xml.decode()
    sent = notice["revisions"][-1]["issued_at"].replace("Z", "-00:00")
    check("<msgType>Update</msgType>" in text and "<sent>%s</sent>" % sent in text
          and text.count(nid + ".r") == 3, "msgType, sent with an offset, references", sent, text[:1500])

    # the same facts backtested give the same revisions (JSON Lines, in order)
    out = snctl(b, "rules", "backtest", "--rules", RULES_DIR, "--json")
    backtest = [json.loads(l) for l in out.splitlines()]
    # the id is keyed: not the plain hash of rule, group and start that anyone
    # could search through a month of milliseconds for the start
    unkeyed = "sn-" + hashlib.sha256(("teamwork-law-enforcement\n\n%d" % ((t0 + 4 * DAY) * 1000)).encode()
                                     ).hexdigest()[:20]
    check(nid != unkeyed and re.match(r"^sn-[0-9a-f]{20}$", nid), "the notice id is keyed", None, nid)
    as_decided = [r for r in stored_revisions(b) if r["id"] == nid]
    check(backtest == as_decided, "backtest equals live", as_decided, backtest)


def test_simulated_counts_match_sql_and_backtest():
    b = started(env={"SN_RULES_TICK": "0s"})
    post_simulated(b, "--seed", "11", "--reviews", "500", "--jurisdictions", "12",
                   "--from", "2025-01-01", "--to", "2025-12-31")
    wait_for(lambda: caught_up(b), 30, "the engine to evaluate every fact")
    live = stored_revisions(b)
    check(len(live) > 20, "the rules fired on a year of simulated reviews", ">20", len(live))
    rules = {r["rule"] for r in live}
    check({"teamwork-law-enforcement", "recurring-theme", "economic-support-suid"} <= rules,
          "each example rule fired", None, rules)
    levels = {"teamwork-law-enforcement": [("advisory", 5, 3), ("warning", 10, 5)],
              "recurring-theme": [("advisory", 15, 5), ("watch", 30, 8)],
              "economic-support-suid": [("advisory", 4, 3), ("warning", 8, 5)]}
    checked = 0
    for rev in live:
        if rev["rule"] not in levels:
            continue
        reviews, jurisdictions, ios = sql_counts(b, rev["rule"], rev)
        got = [rev["counts"]["reviews"], rev["counts"]["jurisdictions"], rev["counts"]["improvement_opportunities"]]
        check(got == [reviews, jurisdictions, ios], "counts of %s r%d (%s) equal SQL's" % (
            rev["id"], rev["revision"], rev["status"]), [reviews, jurisdictions, ios], got)
        held = [s for s, r, j in levels[rev["rule"]] if reviews >= r and jurisdictions >= j]
        if rev["status"] == "resolved":
            check(not held, "a resolved notice is below every level", [], held)
        else:
            check(held and held[-1] == rev["severity"], "severity is the highest level reached",
                  held[-1:] if held else None, rev["severity"])
        checked += 1
    check(checked > 20, "revisions checked against SQL", ">20", checked)
    # revisions of a notice are 1, 2, 3... with issued first and nothing after resolved
    by_id = {}
    for rev in live:
        by_id.setdefault(rev["id"], []).append(rev)
    for nid, revs in by_id.items():
        revs.sort(key=lambda r: r["revision"])
        check([r["revision"] for r in revs] == list(range(1, len(revs) + 1)), "revisions 1..n of " + nid)
        check(revs[0]["status"] == "issued" and all(r["status"] != "resolved" for r in revs[:-1]),
              "issued first, resolved only last", None, [r["status"] for r in revs])
    # the backtest of the same facts gives the same revisions in the same order
    out = snctl(b, "rules", "backtest", "--rules", RULES_DIR, "--json")
    backtest = [json.loads(l) for l in out.splitlines()]
    key = lambda r: (r["issued_at"], r["id"], r["revision"])
    check(sorted(backtest, key=key) == sorted(live, key=key), "backtest equals live",
          len(live), len(backtest))
    check([r["issued_at"] for r in backtest] == sorted(r["issued_at"] for r in backtest),
          "backtest in issue order")
    # --from/--to: only what was issued in the period, and resolutions by --to
    out = snctl(b, "rules", "backtest", "--rules", RULES_DIR, "--json", "--from", "2025-07-01",
                "--to", "2026-12-31")
    period = [json.loads(l) for l in out.splitlines()]
    check(period and all(r["issued_at"] >= "2025-07-01" for r in period), "nothing before --from")
    later = [r for r in period if r["issued_at"] > "2025-12-31T23:59:59Z"]
    check(later and any(r["status"] == "resolved" for r in later),
          "past the last fact, notices resolve by --to", None, len(later))
    # up to the last fact (where the full replay's clock stops) the same as the full replay's
    last = b.psql("SELECT to_char(max(event_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                  "FROM facts")
    check([r for r in period if r["issued_at"] <= last] ==
          [r for r in backtest if r["issued_at"] >= "2025-07-01"], "the period matches the full replay")

    # the notices API: cursor pages, filters, bad parameters
    ids, cursor = [], "0"
    while cursor:
        st, page = api(b, "/v1/notices?limit=2&cursor=" + cursor)
        check(st == 200 and len(page["items"]) <= 2, "a page of at most 2", 200, st)
        ids += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
    check(sorted(ids) == sorted(by_id), "the pages hold every notice once", len(by_id), len(ids))
    st, page = api(b, "/v1/notices?label=theme=teamwork_coordination&rule=recurring-theme")
    check(st == 200 and len(page["items"]) >= 1 and
          all(n["group"] == {"theme": "teamwork_coordination"} for n in page["items"]), "label filter", None, page)
    st, page = api(b, "/v1/notices?status=resolved")
    check(all(n["status"] == "resolved" for n in page["items"]), "status filter")
    for query, name in (("status=open", "status"), ("since=yesterday", "since"), ("colour=red", "colour"),
                        ("label=nolabel=1", "label"), ("limit=0", "limit")):
        st, body = api(b, "/v1/notices?" + query)
        check(st == 400 and body["errors"][0]["parameter"] == name, "400 naming " + name, 400, (st, body))
    st, body = api(b, "/v1/notices/sn-00000000000000000000")
    check(st == 404, "unknown notice: 404", 404, st)
    st, _ = http("GET", b.url("/v1/notices"))[0:2]
    check(st == 401, "notices need a token", 401, st)


def test_leader_killed_mid_stream_is_replaced():
    provider = started(name="pg-provider")
    provider.psql("CREATE DATABASE shared")
    env = {"SN_DATABASE_URL": provider.conninfo("shared"),
           "SN_KAFKA_BOOTSTRAP_SERVERS": provider.read("kafka.bootstrap").strip(),
           "SN_RULES_PATH": RULES_DIR, "SN_RULES_TICK": "0s", "SN_DATABASE_RECONNECT_MAX": "1s"}
    a = Broker(embedded=False, name="leader-a", env=env).start()
    a.wait_ready(20)
    wait_for(lambda: any(l.get("msg") == "rule engine: elected leader" for l in a.logs()), 15, "a to lead")
    b = Broker(embedded=False, name="standby-b", env=env).start()
    b.wait_ready(20)
    time.sleep(1.5)
    check(not any(l.get("msg") == "rule engine: elected leader" for l in b.logs()), "b stands by")
    metrics = http("GET", b.url("/metrics"))[2].decode()
    check("sn_engine_leader 0" in metrics, "b's metrics say it does not lead", None,
          [l for l in metrics.splitlines() if "leader" in l])

    # an admin token of the shared database (no process created one): its
    # hash, as POST /v1/tokens stores it
    secret = "sn_test_shared_admin_token_0123456789abcdef"
    provider.psql("INSERT INTO tokens (role, name, token_sha256) VALUES ('admin', 'test', "
                  "decode('%s', 'hex')); SELECT pg_notify('sn_tokens', 'created')"
                  % hashlib.sha256(secret.encode()).hexdigest(), dbname="shared")
    with open(os.path.join(b.dir, "admin.token"), "w") as f:
        f.write(secret + "\n")

    sim = subprocess.run([SIMULATE, "--seed", "5", "--reviews", "800", "--jurisdictions", "12",
                          "--from", "2025-01-01", "--to", "2025-12-31"], capture_output=True, check=True)
    lines = sim.stdout.decode().splitlines()
    emitted = {}

    def emit():
        # through b (not the leader), in small batches, while a is killed
        r = subprocess.run([EMIT, "--url", "http://" + b.address, "--token", secret, "--batch", "10",
                            "--quiet"], input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=300)
        emitted["rc"] = r.returncode
        emitted["err"] = r.stderr

    wait_for(lambda: api(b, "/v1/rules", token=secret)[0] == 200, 10, "b to know the token")
    t = threading.Thread(target=emit)
    t.start()
    wait_for(lambda: int(provider.psql("SELECT count(*) FROM notice_revisions", dbname="shared") or 0) >= 10,
             30, "a to publish revisions", interval=0.02)
    a.kill9()
    killed_at = time.monotonic()
    wait_for(lambda: any(l.get("msg") == "rule engine: elected leader" for l in b.logs()), 10,
             "b to take over within 10 s", interval=0.05)
    takeover = time.monotonic() - killed_at
    t.join()
    check(emitted["rc"] == 0, "every review accepted", 0, emitted.get("err", b"")[-1000:])
    facts_total = provider.psql("SELECT count(*) FROM facts", dbname="shared")

    def done():
        return provider.psql("SELECT (SELECT last_fact_id FROM engine_state) = (SELECT max(id) FROM facts)",
                             dbname="shared") == "t"
    wait_for(done, 30, "b to evaluate every fact")
    rows = provider.psql("SELECT " + EVENT_BODY + " FROM notice_revisions ORDER BY event_time, notice_id, "
                         "revision", dbname="shared")
    live = [json.loads(l) for l in rows.splitlines() if l]
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token", secret, "rules", "backtest",
                        "--rules", RULES_DIR, "--json"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "backtest through b", 0, r.stderr)
    backtest = [json.loads(l) for l in r.stdout.splitlines()]
    key = lambda x: (x["issued_at"], x["id"], x["revision"])
    missing = {key(x) for x in backtest} - {key(x) for x in live}
    extra = {key(x) for x in live} - {key(x) for x in backtest}
    check(not missing and not extra, "no revision missing or extra after the takeover",
          (0, 0), (sorted(missing)[:3], sorted(extra)[:3]))
    check(sorted(live, key=key) == sorted(backtest, key=key), "and each equal to the backtest's")
    dup = provider.psql("SELECT count(*) - count(DISTINCT (notice_id, revision)) FROM outbox", dbname="shared")
    check(dup == "0", "one outbox row per revision", "0", dup)
    print("    takeover after kill -9: %.2f s; %s facts, %d revisions" % (takeover, facts_total, len(live)))
    check(b.stop() == 0, "b stops cleanly")


def test_bad_reload_keeps_the_running_rules():
    rules = tempfile.mkdtemp(prefix="rules-", dir=Session.get_root())
    shutil.copy(os.path.join(RULES_DIR, "teamwork-law-enforcement.json"), rules)
    b = started(env={"SN_RULES_PATH": rules, "SN_RULES_TICK": "0s"})
    st, listing = api(b, "/v1/rules")
    check(st == 200 and [r["id"] for r in listing["rules"]] == ["teamwork-law-enforcement"], "one rule")
    with open(os.path.join(RULES_DIR, "recurring-themes.json")) as f:
        good = json.load(f)
    bad = json.loads(json.dumps(good))
    bad["rules"][0]["match"] = ["theme=~(unclosed"]
    with open(os.path.join(rules, "themes.json"), "w") as f:
        json.dump(bad, f)
    st, body = api(b, "/v1/rules/reload", method="POST", body={})
    check(st == 422, "a bad rules file is refused", 422, (st, body))
    e = body["errors"][0]
    check(e["file"].endswith("themes.json") and e["rule"] == "recurring-theme" and
          e["pointer"] == "/rules/0/match/0", "the error names the file, rule and field", None, e)
    st, listing = api(b, "/v1/rules")
    check([r["id"] for r in listing["rules"]] == ["teamwork-law-enforcement"], "the running rules stay")
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_for(lambda: any(l.get("msg") == "rules: the reload was refused; the running rules stay"
                         for l in b.logs()), 10, "SIGHUP with a bad file: refused, logged")
    check(b.readyz()[0] == 200, "still ready")
    emitter = create_token(b, "emitter", "US-TN")
    st, body = api(b, "/v1/rules/reload", token=emitter, method="POST", body={})
    check(st == 403, "only an admin reloads", 403, st)
    # fixed: the new rule is loaded and evaluated over the stored facts
    admin = b.read("admin.token").strip()
    for i in range(16):
        j = ["US-TN", "US-MN", "US-CA", "US-GA", "US-AZ"][i % 5]
        post(b, admin, event(j, "ev-%d" % i, review(j, "R-%d" % i, finalized_at=iso(1767268800 + i * 3600))))
    wait_for(lambda: caught_up(b), 20, "facts evaluated")
    with open(os.path.join(rules, "themes.json"), "w") as f:
        json.dump(good, f)
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_for(lambda: sorted(r["id"] for r in api(b, "/v1/rules")[1]["rules"]) ==
             ["recurring-theme", "teamwork-law-enforcement"], 10, "SIGHUP loads the fixed file")
    wait_for(lambda: api(b, "/v1/notices?rule=recurring-theme")[1]["items"], 20,
             "the new rule's notices from the stored facts")
    themes = sorted(n["group"]["theme"] for n in api(b, "/v1/notices?rule=recurring-theme")[1]["items"])
    check(themes == ["economic_support", "teamwork_coordination"], "one notice per recurring theme", None, themes)
    check(b.stop() == 0, "stops cleanly")


def test_the_wall_clock_tick_resolves_when_reviews_stop():
    """Live, time passes without facts: the tick moves the clock, the facts
    leave the window and the notice resolves at the moment that falls due
    (expiry + resolve_after), not at the tick that notices it."""
    rules = tempfile.mkdtemp(prefix="rules-", dir=Session.get_root())
    rule = {"id": "fast", "description": "a short window for the test",
            "match": ["kind=improvement_opportunity", "theme=teamwork_coordination"],
            "window": "20s", "levels": [{"severity": "advisory", "min_reviews": 2, "min_jurisdictions": 2}],
            "repeat_interval": "1h", "resolve_after": "3s", "topic": "notices.fast",
            "headline": "{reviews} reviews", "summary": "{reviews} reviews in {window}"}
    with open(os.path.join(rules, "fast.json"), "w") as f:
        json.dump({"rules": [rule]}, f)
    b = started(env={"SN_RULES_PATH": rules, "SN_RULES_TICK": "1s"})
    admin = b.read("admin.token").strip()
    t = int(time.time()) - 5
    for i, j in enumerate(["US-TN", "US-MN"]):
        st, _, _ = post(b, admin, event(j, "ev-%d" % i, teamwork_review(j, "R-%d" % i, t)))
        check(st == 202, "review accepted")
    wait_for(lambda: api(b, "/v1/notices?status=issued")[1]["items"], 10, "the notice issued")
    check(api(b, "/v1/notices?status=resolved")[1]["items"] == [], "not resolved while the facts are in")
    wait_for(lambda: api(b, "/v1/notices?status=resolved")[1]["items"], 40, "the tick to resolve it")
    nid = api(b, "/v1/notices?status=resolved")[1]["items"][0]["id"]
    revs = [r for r in stored_revisions(b) if r["id"] == nid]
    got = [(r["status"], r["counts"]["reviews"]) for r in revs]
    check(got == [("issued", 2), ("resolved", 0)], "issued, then resolved", None, got)
    # issued when the second review was evaluated: the clock had already been
    # moved to the wall clock by a tick, so at that wall-clock second
    check(iso(t) <= revs[0]["issued_at"] <= iso(t + 15), "issued on arrival", iso(t), revs[0]["issued_at"])
    check(revs[1]["issued_at"] == iso(t + 20 + 3), "resolved 3 s after the facts left the window",
          iso(t + 23), revs[1]["issued_at"])


def test_the_engine_connection_lost_mid_stream_resumes_exactly():
    """The leader's own connection is cut (pg_terminate_backend) while facts
    stream in: it reconnects, takes the lock again, restores its checkpoint
    and goes on, with every revision once."""
    b = started(env={"SN_RULES_TICK": "0s", "SN_DATABASE_RECONNECT_MAX": "500ms"})
    sim = subprocess.run([SIMULATE, "--seed", "21", "--reviews", "600", "--jurisdictions", "12",
                          "--from", "2025-01-01", "--to", "2025-12-31"], capture_output=True, check=True)
    done = {}

    def emit():
        r = subprocess.run([EMIT, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token",
                            "--quiet"], input=sim.stdout, capture_output=True, timeout=300)
        done["rc"] = r.returncode

    t = threading.Thread(target=emit)
    t.start()
    def elected():
        return sum(1 for l in b.logs() if l.get("msg") == "rule engine: elected leader")

    cuts = 0
    while t.is_alive() and cuts < 3:
        # the engine leads again (and publishes) before each cut
        wait_for(lambda: elected() == cuts + 1, 10, "the engine to lead before cut %d" % (cuts + 1))
        before = int(b.psql("SELECT count(*) FROM notice_revisions") or 0)
        while t.is_alive() and int(b.psql("SELECT count(*) FROM notice_revisions") or 0) <= before:
            time.sleep(0.02)
        killed = b.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'sn-broker-engine'")
        cuts += int(killed)
    t.join()
    check(done.get("rc") == 0, "every review accepted")
    check(cuts >= 2, "the engine's connection was cut mid-stream", ">= 2", cuts)
    wait_for(lambda: caught_up(b), 30, "the engine to evaluate every fact after the cuts")
    wait_for(lambda: elected() == cuts + 1, 10, "re-elected after each cut")
    live = stored_revisions(b)
    out = snctl(b, "rules", "backtest", "--rules", RULES_DIR, "--json")
    backtest = [json.loads(l) for l in out.splitlines()]
    key = lambda r: (r["issued_at"], r["id"], r["revision"])
    check(sorted(live, key=key) == sorted(backtest, key=key), "every revision once, as the backtest has them",
          len(backtest), len(live))
    print("    engine connection cut %d times mid-stream; %d revisions, each once" % (cuts, len(live)))
