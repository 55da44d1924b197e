"""sn-simulate: reproducible synthetic review events that the broker's own
validator accepts and that follow the partnership's published figures."""
import collections
import json
import os
import re
import subprocess
import tempfile

from harness import BIN, ROOT, SANITIZER_MARKERS, check

BIN_DIR = os.path.dirname(os.path.abspath(BIN))
SIMULATE = os.path.join(BIN_DIR, "sn-simulate")
SCHEMA_CHECK = os.path.join(BIN_DIR, "schema_check")
SCHEMAS = os.path.join(ROOT, "schemas")
JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,12}){1,3}$")

_cache = {}


def simulate(*args, expect=0):
    """Runs sn-simulate; returns (stdout bytes, stderr text). Checks the exit
    status and that stderr holds no sanitizer report."""
    r = subprocess.run([SIMULATE] + [str(a) for a in args], capture_output=True, timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        check(marker not in err, "no sanitizer report from sn-simulate %s" % " ".join(map(str, args)),
              "", err[-2000:])
    check(r.returncode == expect, "sn-simulate %s exits %d" % (" ".join(map(str, args)), expect),
          expect, (r.returncode, err[-500:]))
    return r.stdout, err


def events(*args):
    """The parsed events of a successful run (cached: several tests share a run)."""
    if args not in _cache:
        out, err = simulate(*args)
        check(err == "", "a successful run writes nothing on stderr", "", err[-500:])
        lines = out.decode("utf-8").split("\n")
        check(lines[-1] == "", "the output ends with a newline", "", lines[-1][-200:])
        _cache[args] = [json.loads(line) for line in lines[:-1]]
    return _cache[args]


def schema_verdicts(schema_id, instances):
    payload = "".join(json.dumps(i) + "\n" for i in instances).encode()
    r = subprocess.run([SCHEMA_CHECK, SCHEMAS, schema_id], input=payload, capture_output=True,
                       timeout=120)
    check(r.returncode == 0, "schema_check %s runs" % schema_id, 0, (r.returncode, r.stderr[-500:]))
    return r.stdout.decode().splitlines()


def economic(review):
    return ("economic_support" in review["family_needs"] or
            any(io["theme"] == "economic_support" for io in review["improvement_opportunities"]))


def test_same_arguments_same_bytes_other_seed_other_output():
    args = ["--seed", "42", "--reviews", "300", "--jurisdictions", "20"]
    first, _ = simulate(*args)
    second, _ = simulate(*args)
    check(len(first) > 0, "some output")
    check(first == second, "the same arguments give the same bytes", len(first), len(second))
    other, _ = simulate("--seed", "43", "--reviews", "300", "--jurisdictions", "20")
    check(other != first, "another seed gives other output")
    defaults, _ = simulate()
    explicit, _ = simulate("--seed", "1", "--reviews", "100", "--jurisdictions", "12",
                           "--from", "2025-01-01", "--to", "2025-12-31")
    check(defaults == explicit, "the defaults are seed 1, 100 reviews, 12 jurisdictions, 2025")
    check(defaults.count(b"\n") == 100, "100 lines by default", 100, defaults.count(b"\n"))


def test_every_event_and_its_data_are_valid():
    evs = events("--seed", "7", "--reviews", "1500", "--jurisdictions", "60")
    check(len(evs) == 1500, "one event per review", 1500, len(evs))
    verdicts = schema_verdicts("cloudevent.v1.json", evs)
    bad = [(i, v) for i, v in enumerate(verdicts) if v != "valid"]
    check(len(verdicts) == len(evs) and not bad, "every envelope is valid", "valid", bad[:3])
    verdicts = schema_verdicts("review-completed.v1.json", [e["data"] for e in evs])
    bad = [(i, v) for i, v in enumerate(verdicts) if v != "valid"]
    check(len(verdicts) == len(evs) and not bad, "every data is valid", "valid", bad[:3])
    for e in evs:
        check(e["specversion"] == "1.0" and e["type"] == "org.npcs.review.completed.v1",
              "CloudEvents 1.0 review.completed", None, e["type"])
        check(e["datacontenttype"] == "application/json", "datacontenttype", "application/json",
              e.get("datacontenttype"))
        check(e["time"] == e["data"]["finalized_at"], "time is finalized_at",
              e["data"]["finalized_at"], e["time"])
        for io in e["data"]["improvement_opportunities"]:
            summary = io.get("summary", "")
            check(e["data"]["review_id"] not in summary, "no summary names its review id",
                  None, summary)


def test_identity_source_and_review_ids():
    evs = events("--seed", "7", "--reviews", "1500", "--jurisdictions", "60")
    keys = set()
    review_ids = set()
    for e in evs:
        code = e["data"]["jurisdiction"]
        check(JURISDICTION.match(code), "jurisdiction code is well formed", JURISDICTION.pattern, code)
        check(e["source"] == "urn:npcs:jurisdiction:" + code, "source matches data.jurisdiction",
              "urn:npcs:jurisdiction:" + code, e["source"])
        key = (e["source"], e["id"])
        check(key not in keys, "(source, id) is unique", None, key)
        keys.add(key)
        rid = (code, e["data"]["review_id"])
        check(rid not in review_ids, "review ids are unique per jurisdiction", None, rid)
        review_ids.add(rid)
    codes = {e["data"]["jurisdiction"] for e in evs}
    check(len(codes) == 60, "exactly --jurisdictions distinct jurisdictions", 60, len(codes))
    kinds = collections.Counter(c.count("-") for c in codes)
    check(kinds[1] > 0 and kinds[2] > 0, "a mix of states and counties or tribes", None, kinds)


def test_many_jurisdictions_are_distinct_and_valid():
    evs = events("--seed", "3", "--reviews", "2500", "--jurisdictions", "400")
    codes = collections.Counter(e["data"]["jurisdiction"] for e in evs)
    check(len(codes) == 400, "400 distinct jurisdictions", 400, len(codes))
    bad = [c for c in codes if not JURISDICTION.match(c)]
    check(not bad, "every code matches the jurisdiction pattern", [], bad[:5])
    one = {e["data"]["jurisdiction"] for e in events("--reviews", "300", "--jurisdictions", "12")}
    other = {e["data"]["jurisdiction"]
             for e in events("--seed", "99", "--reviews", "300", "--jurisdictions", "12")}
    check(one == other, "the jurisdiction codes do not depend on the seed", sorted(one),
          sorted(other))
    check(one <= set(codes), "a smaller set is the start of a larger one", sorted(one),
          sorted(one - set(codes)))


def test_times_within_period_in_order():
    evs = events("--seed", "11", "--reviews", "800", "--from", "2024-02-10", "--to", "2024-05-20")
    stamps = [e["data"]["finalized_at"] for e in evs]
    for s in stamps:
        check(re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", s), "RFC 3339 UTC", None, s)
        check("2024-02-10" <= s[:10] <= "2024-05-20", "finalized_at within --from/--to",
              "2024-02-10..2024-05-20", s)
    check(stamps == sorted(stamps), "events come in finalized_at order")
    days = {s[:10] for s in stamps}
    check(len(days) > 60, "finalized_at is spread over the period", "> 60 days", len(days))
    check(min(stamps) < "2024-02-20" and max(stamps) > "2024-05-10",
          "the whole period is used", None, (min(stamps), max(stamps)))
    for e in evs:
        month = e["data"]["incident"]["month"]
        fin = e["data"]["finalized_at"][:7]
        check(month < fin, "incident month before the month of finalized_at", fin, month)
        y, m = map(int, fin.split("-"))
        iy, im = map(int, month.split("-"))
        back = (y * 12 + m) - (iy * 12 + im)
        check(1 <= back <= 6, "incident 1 to 6 months before finalization", "1..6", back)
    one_day = events("--reviews", "5000", "--from", "2025-06-02", "--to", "2025-06-02")
    stamps = [e["data"]["finalized_at"] for e in one_day]
    check(len(stamps) == 5000 and all(s.startswith("2025-06-02T") for s in stamps) and
          stamps == sorted(stamps), "5000 reviews on one day, in order")


def test_distribution_follows_published_figures():
    evs = events("--seed", "2024", "--reviews", "2000")
    data = [e["data"] for e in evs]
    n = len(data)
    ios = [io for d in data for io in d["improvement_opportunities"]]
    counts = [len(d["improvement_opportunities"]) for d in data]
    mean = len(ios) / n
    teamwork = sum(any(io["theme"] == "teamwork_coordination"
                       for io in d["improvement_opportunities"]) for d in data) / n
    econ = sum(economic(d) for d in data) / n
    suid = [d for d in data if d["incident"]["cause"] == "suid"]
    other = [d for d in data if d["incident"]["cause"] != "suid"]
    econ_suid = sum(map(economic, suid)) / max(1, len(suid))
    econ_other = sum(map(economic, other)) / max(1, len(other))
    partners = collections.Counter(io["partner"] for io in ios
                                   if io["theme"] == "teamwork_coordination" and "partner" in io)
    tw_ios = sum(io["theme"] == "teamwork_coordination" for io in ios)
    print("    %d reviews, %d opportunities (%.2f per review, %d..%d); teamwork %.1f%% of reviews "
          "(%.0f%% of its opportunities with a partner; top %s); economic support %.1f%% "
          "(suid %.1f%% of %d, others %.1f%%)"
          % (n, len(ios), mean, min(counts), max(counts), 100 * teamwork,
             100 * sum(partners.values()) / max(1, tw_ios), partners.most_common(3), 100 * econ,
             100 * econ_suid, len(suid), 100 * econ_other))
    check(2.3 <= mean <= 2.9, "opportunities per review", "2.3..2.9", mean)
    check(min(counts) >= 1 and max(counts) <= 8, "1..8 opportunities per review", "1..8",
          (min(counts), max(counts)))
    check(0.5 <= teamwork <= 0.62, "share of reviews with teamwork_coordination", "0.5..0.62",
          teamwork)
    check(0.2 <= econ <= 0.3, "share of reviews with economic support", "0.2..0.3", econ)
    check(len(suid) > 100, "suid is a common cause", "> 100", len(suid))
    check(econ_suid > econ_other, "economic support more often after suid", "> %.3f" % econ_other,
          econ_suid)
    check(partners and partners.most_common(1)[0][0] == "law_enforcement",
          "law enforcement is the most frequent partner of teamwork", "law_enforcement",
          partners.most_common(3))
    check(sum(partners.values()) > tw_ios / 2, "most teamwork opportunities name a partner",
          "> %d" % (tw_ios / 2), sum(partners.values()))
    bands = collections.Counter(d["incident"]["child_age_band"] for d in suid)
    check(set(bands) == {"0-3"}, "suid reviews concern infants (0-3)", {"0-3"}, dict(bands))
    with_subtheme = sum("subtheme" in io for io in ios)
    check(0 < with_subtheme < len(ios), "some opportunities have a subtheme, not all", None,
          with_subtheme)


def test_vocabulary_is_read_and_required_codes_checked():
    with open(os.path.join(SCHEMAS, "vocabulary.v1.json")) as f:
        vocab = json.load(f)
    with tempfile.TemporaryDirectory() as d:
        extended = json.loads(json.dumps(vocab))
        extended["sets"]["theme"]["terms"].append(
            {"code": "new_theme", "label": "A new theme", "definition": "Added for a test."})
        path = os.path.join(d, "extended.json")
        with open(path, "w") as f:
            json.dump(extended, f)
        out, _ = simulate("--vocabulary", path, "--reviews", "400")
        themes = {io["theme"] for line in out.splitlines()
                  for io in json.loads(line)["data"]["improvement_opportunities"]}
        check("new_theme" in themes, "a theme added to the vocabulary is used", "new_theme",
              sorted(themes))
        for set_name, code in (("partner", "law_enforcement"), ("cause", "suid"),
                               ("theme", "teamwork_coordination"),
                               ("family_need", "economic_support")):
            reduced = json.loads(json.dumps(vocab))
            terms = reduced["sets"][set_name]["terms"]
            reduced["sets"][set_name]["terms"] = [t for t in terms if t["code"] != code]
            path = os.path.join(d, "without-%s.json" % code)
            with open(path, "w") as f:
                json.dump(reduced, f)
            _, err = simulate("--vocabulary", path, expect=2)
            check(code in err, "the message names the missing code", code, err)
        _, err = simulate("--vocabulary", os.path.join(d, "missing.json"), expect=2)
        check("missing.json" in err, "the message names the missing file", "missing.json", err)
    # found next to the build tree whatever the working directory
    r = subprocess.run([SIMULATE, "--reviews", "1"], cwd="/", capture_output=True, timeout=60)
    check(r.returncode == 0 and r.stdout.count(b"\n") == 1,
          "the default vocabulary is found from another directory", 0, (r.returncode, r.stderr))


def test_bad_arguments_exit_2_help_exits_0():
    for args in (["--reviews", "-1"], ["--reviews", "abc"], ["--reviews", "1.5"],
                 ["--jurisdictions", "0"], ["--seed", "-3"], ["--from", "2025-13-01"],
                 ["--from", "2025-02-30"], ["--to", "2025/12/31"],
                 ["--from", "2025-06-02", "--to", "2025-06-01"], ["--no-such-option"],
                 ["--reviews"], ["stray-argument"]):
        out, err = simulate(*args, expect=2)
        check(out == b"", "no output on bad arguments %s" % args, b"", out[:200])
        check(err.startswith("sn-simulate: "), "a message on stderr for %s" % args, None, err)
    out, _ = simulate("--help")
    text = out.decode()
    for word in ("--seed", "--reviews", "--jurisdictions", "--from", "--to", "--vocabulary",
                 "Example"):
        check(word in text, "--help mentions %s" % word, word, text)
    out, _ = simulate("--version")
    check(out.startswith(b"sn-simulate "), "--version names the program", "sn-simulate ...", out)
    out, _ = simulate("--reviews", "0")
    check(out == b"", "--reviews 0 writes nothing", b"", out)
