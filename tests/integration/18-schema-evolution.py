"""Schema evolution: a second version of the review event is accepted next to
the first with no change to the broker, only files in its schema directory.

The test copies schemas/ into a temporary directory, adds the fixture of
tests/fixtures/schema-v2 (a v2 schema with renamed and restructured members, its
mapping onto the canonical v1 review, and an event-types.json that lists both
types) and starts the same binary with SN_SCHEMAS_DIR pointing there. A review
sent as v1 and the same review sent as v2 (HTTP structured and binary mode, and
Kafka) are both accepted and give the same facts; the v2 event is stored as it
came; a v2 event with an error is refused in v2's terms; an unlisted type is
refused at /type. Without the fixture, v2 is an unknown type; with a malformed
mapping, the broker does not start and says which file is wrong."""
import json
import os
import shutil
import subprocess
import tempfile

from harness import ROOT, Broker, Session, check, http, wait_for
from ingest_util import binary_headers, create_token, event, post, review

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "schema-v2")
V1 = "org.npcs.review.completed.v1"
V2 = "org.npcs.review.completed.v2"
FACT_LABELS = ("kind, theme, subtheme, partner, seips_domain, priority, incident_type, cause, age_band, "
               "need, jurisdiction")


def schemas_with_v2():
    """schemas/ plus the v2 fixture, in a directory of its own: a file copy."""
    d = tempfile.mkdtemp(prefix="schemas-v2-", dir=Session.get_root())
    os.chmod(d, 0o755)
    for name in os.listdir(os.path.join(ROOT, "schemas")):
        if name.endswith(".json"):
            shutil.copy(os.path.join(ROOT, "schemas", name), d)
    shutil.copytree(FIXTURE, d, dirs_exist_ok=True)
    return d


def review_v2(jurisdiction="US-TN", review_id="R-1", finalized_at="2026-03-01T10:00:00Z"):
    """ingest_util.review() written in the fixture's v2, with a member v1 does not have."""
    return {
        "review": {"id": review_id, "jurisdiction": jurisdiction, "finalized": finalized_at,
                   "team": {"size": 5, "chair": "Private name of the chair"}},
        "case": {"incident": {"severity": "death", "cause": "suid", "month": "2026-01", "age_band": "0-3"},
                 "prior_agency_involvement": True},
        "opportunities": [
            {"theme_code": "teamwork_coordination", "partner_agency": "law_enforcement",
             "seips": {"domain": "organization"}, "priority": "P1",
             "notes": "Private notes of %s about %s" % (jurisdiction, review_id)},
            {"theme_code": "economic_support", "seips": {"domain": "external_environment"}, "priority": "P2"},
        ],
        "family_needs": [{"code": "economic_support", "notes": "Private notes on a need"}, {"code": "housing"}],
    }


def event_v2(jurisdiction="US-TN", event_id="ev-1", data=None):
    return event(jurisdiction, event_id, data if data is not None else review_v2(jurisdiction), type=V2)


def facts_of(b, review_id):
    return b.psql("SELECT string_agg(concat_ws('|', %s), E'\\n' ORDER BY id) FROM facts "
                  "WHERE review_id = '%s' AND retracted_at IS NULL" % (FACT_LABELS, review_id))


def kcat_produce(bootstrap, lines, key):
    r = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "reviews.completed", "-k", key],
                       input="".join(l + "\n" for l in lines), capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "kcat produced", 0, r.stderr)


def pointers(body):
    return [e["pointer"] for e in (body or {}).get("errors", [])]


def test_v1_and_v2_side_by_side():
    b = Broker(env={"SN_SCHEMAS_DIR": schemas_with_v2()}).start()
    b.wait_ready()
    tn = create_token(b, "emitter", "US-TN")
    k = b.read("kafka.bootstrap").strip()
    # Kafka first: the consumer works while HTTP is tested
    bad = review_v2("US-TN", "K-BAD")
    bad["opportunities"][1]["seips"]["domain"] = "people"
    kcat_produce(k, [json.dumps(event_v2("US-TN", "k-bad", bad)),
                     json.dumps(event_v2("US-TN", "k-2", review_v2("US-TN", "K-2")))], key="US-TN")

    status, _, body = post(b, tn, event("US-TN", "v1-1", review("US-TN", "R-V1")))
    check(status == 202, "a v1 review is accepted", 202, (status, body))
    status, _, body = post(b, tn, event_v2("US-TN", "v2-1", review_v2("US-TN", "R-V2")))
    check(status == 202, "the same review as v2 is accepted", 202, (status, body))
    ev = event_v2("US-TN", "v2-bin", review_v2("US-TN", "R-V2-BIN"))
    status, _, body = post(b, tn, json.dumps(ev["data"]), "application/json", binary_headers(ev))
    check(status == 202, "v2 in binary mode (ce-type header) is accepted", 202, (status, body))

    v1_facts = facts_of(b, "R-V1")
    check(v1_facts.count("\n") == 3, "four facts from the v1 review", 4, v1_facts)
    for rid in ("R-V2", "R-V2-BIN"):
        got = facts_of(b, rid)
        check(got == v1_facts, "the facts of %s (v2) are those of the same review as v1" % rid, v1_facts, got)
    leaked = b.psql("SELECT count(*) FROM facts WHERE facts::text LIKE '%Private%'")
    check(leaked == "0", "no free text of v2 (notes, the chair's name) in any fact", "0", leaked)

    stored = json.loads(b.psql("SELECT envelope FROM events WHERE event_id = 'v2-1'"))
    sent = event_v2("US-TN", "v2-1", review_v2("US-TN", "R-V2"))
    del sent["datacontenttype"]
    check(stored == sent, "the v2 event is stored as it came", sent, stored)
    row = b.psql("SELECT jurisdiction || ' ' || version || ' ' || (finalized_at = '2026-03-01T10:00:00Z') "
                 "FROM reviews WHERE review_id = 'R-V2'")
    check(row == "US-TN 1 true", "the review's row comes from the canonical review", "US-TN 1 true", row)
    status, _, raw = http("GET", b.url("/v1/reviews/US-TN/R-V2"), headers={"Authorization": "Bearer " + tn})
    check(status == 200 and json.loads(raw) == sent["data"],
          "GET /v1/reviews answers the v2 data as it was sent", (200, sent["data"]), (status, raw))

    # errors in v2's terms
    wrong = review_v2("US-TN", "R-BAD")
    wrong["opportunities"][0]["theme_code"] = "teamwork"
    del wrong["case"]["incident"]["age_band"]
    status, headers, body = post(b, tn, event_v2("US-TN", "v2-bad", wrong))
    want = ["/data/case/incident/age_band", "/data/opportunities/0/theme_code"]
    check(status == 422 and headers["Content-Type"] == "application/problem+json"
          and sorted(pointers(body)) == want, "a bad v2 review: 422 with v2's pointers", (422, want),
          (status, body))
    other = review_v2("US-TN", "R-OTHER")
    other["review"]["jurisdiction"] = "US-GA"
    status, _, body = post(b, tn, event_v2("US-TN", "v2-other", other))
    check(status == 422 and pointers(body) == ["/data/review/jurisdiction"],
          "a v2 review of another jurisdiction than its source: 422 where v2 keeps the jurisdiction",
          (422, ["/data/review/jurisdiction"]), (status, body))
    status, _, body = post(b, tn, event("US-TN", "v3-1", review_v2("US-TN", "R-V3"),
                                        type="org.npcs.review.completed.v3"))
    message = (body or {}).get("errors", [{}])[0].get("message", "")
    check(status == 422 and pointers(body) == ["/type"] and V1 in message and V2 in message,
          "an unlisted type: 422 at /type naming the accepted types", (422, ["/type"], V1, V2), (status, body))
    # a v1 body under the v2 type is refused by the v2 schema
    status, _, body = post(b, tn, event("US-TN", "v2-v1body", review("US-TN", "R-MIX"), type=V2))
    check(status == 422 and "/data/review" in pointers(body), "v1 data under the v2 type: 422", 422, (status, body))

    wait_for(lambda: b.psql("SELECT count(*) FROM events WHERE event_id = 'k-2'") == "1", 20,
             "the v2 review from Kafka to be stored")
    check(facts_of(b, "K-2") == v1_facts, "a v2 review from Kafka gives the same facts", v1_facts, facts_of(b, "K-2"))
    q = b.psql("SELECT status || ' ' || (errors->0->>'pointer') FROM quarantine")
    check(q == "422 /data/opportunities/1/seips/domain", "a bad v2 message is quarantined in v2's terms",
          "422 /data/opportunities/1/seips/domain", q)
    check(b.psql("SELECT count(*) FROM events") == "4", "nothing refused was stored", "4",
          b.psql("SELECT count(*) FROM events"))


def test_without_the_v2_files_v2_is_an_unknown_type():
    b = Broker().start()
    b.wait_ready()
    tn = create_token(b, "emitter", "US-TN")
    status, _, body = post(b, tn, event_v2("US-TN", "v2-1", review_v2("US-TN", "R-V2")))
    message = (body or {}).get("errors", [{}])[0].get("message", "")
    check(status == 422 and pointers(body) == ["/type"] and V1 in message and V2 not in message,
          "the shipped schemas/ know v1 only: v2 is 422 at /type", (422, ["/type"]), (status, body))
    status, _, body = post(b, tn, event("US-TN", "v1-1", review("US-TN", "R-V1")))
    check(status == 202, "v1 is accepted", 202, (status, body))


def refused_start(schemas_dir, want):
    b = Broker(fresh=True, env={"SN_SCHEMAS_DIR": schemas_dir}).start()
    try:
        code = b.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the broker started with a broken schema directory:\n" + b.tail())
    errors = [l.get("msg", "") for l in b.logs() if l.get("level") in ("error", "fatal")]
    check(code == 2 and any(want in e for e in errors),
          "the broker refuses to start (exit 2) and names the problem (%r)" % want, (2, want), (code, errors))


def test_a_broken_mapping_or_registry_stops_the_start():
    d = schemas_with_v2()
    mapping = os.path.join(d, "mappings", "review-completed.v2.json")
    with open(mapping) as f:
        good = f.read()
    with open(mapping, "w") as f:
        f.write(good.replace('"from": "/review/id"', '"form": "/review/id"'))
    refused_start(d, "mappings/review-completed.v2.json#/fields/0: unknown member \"form\"")
    with open(mapping, "w") as f:
        f.write(good[:-20])
    refused_start(d, mapping + " (mapping of %s)" % V2)
    os.unlink(mapping)
    refused_start(d, mapping + " (mapping of %s)" % V2)
    with open(os.path.join(d, "event-types.json"), "w") as f:
        json.dump({"types": {V1: {"schema": "review-completed.v1.json"},
                             V2: {"schema": "review-completed.v2.json"}}}, f)
    refused_start(d, "event-types.json: the data of %s (review-completed.v2.json) is not the canonical review" % V2)
    os.unlink(os.path.join(d, "event-types.json"))
    refused_start(d, "event-types.json is missing")
