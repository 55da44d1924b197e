"""What the rule-engine tests share: the admin API and snctl of a broker,
simulated reviews posted through sn-emit, the stored revisions, and the counts
of a deploy rule computed in SQL, independently of the engine."""
import json
import os
import subprocess

import harness
from harness import ROOT, SNCTL, check

SIMULATE = os.path.join(os.path.dirname(SNCTL), "sn-simulate")
EMIT = os.path.join(os.path.dirname(SNCTL), "sn-emit")
RULES_DIR = os.path.join(ROOT, "deploy", "rules")


def api(b, path, token=None, method="GET", body=None):
    """harness.api with the token third, as the rules tests call it."""
    return harness.api(b, path, method, body, token)


def snctl(b, *args):
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token"]
                       + list(args), capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "snctl " + " ".join(args), 0, (r.returncode, r.stderr[-2000:]))
    return r.stdout


def caught_up(b):
    """The engine has evaluated every stored fact."""
    return b.psql("SELECT (SELECT last_fact_id FROM engine_state) = "
                  "(SELECT coalesce(max(id), 0) FROM facts)") == "t"


# A stored revision with its event time as issued_at: what a backtest (event
# time only) gives. The published issued_at is the wall clock's.
EVENT_BODY = ("jsonb_set(body, '{issued_at}', to_jsonb(to_char(event_time AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))::text")


def stored_revisions(b):
    rows = b.psql("SELECT " + EVENT_BODY + " FROM notice_revisions ORDER BY event_time, notice_id, revision")
    return [json.loads(l) for l in rows.splitlines() if l]


def sql_counts(b, rule, rev):
    """Distinct reviews, jurisdictions and IOs matching a deploy rule in the
    revision's window, computed from the facts table (not by the engine)."""
    match = {"teamwork-law-enforcement": "kind = 'improvement_opportunity' AND theme = "
                                         "'teamwork_coordination' AND partner = 'law_enforcement'",
             "recurring-theme": "kind = 'improvement_opportunity' AND theme = '%s'"
                                % rev["group"].get("theme", ""),
             "economic-support-suid": "kind = 'family_need' AND need = 'economic_support' AND "
                                      "cause = 'suid'"}[rule]
    # live facts as of the revision: retracted only by an amendment evaluated later
    row = b.psql(
        "SELECT count(DISTINCT (jurisdiction, review_id)) || ' ' || count(DISTINCT jurisdiction) || ' ' "
        "|| count(*) FILTER (WHERE kind = 'improvement_opportunity') FROM facts "
        "WHERE %s AND retracted_at IS NULL AND event_time > '%s'::timestamptz - interval '180 days' "
        "AND event_time <= '%s'::timestamptz" % (match, rev["issued_at"], rev["issued_at"]))
    return [int(x) for x in row.split()]


def post_simulated(b, *args):
    sim = subprocess.run([SIMULATE] + list(args), capture_output=True, check=True, timeout=120)
    r = subprocess.run([EMIT, "--url", "http://" + b.address, "--token-file", b.dir + "/admin.token",
                        "--batch", "50", "--quiet"], input=sim.stdout, capture_output=True, timeout=300)
    check(r.returncode == 0, "sn-emit posted the simulated reviews", 0, r.stderr[-2000:])
    return sim.stdout.decode().splitlines()
