"""Schema agreement: the broker's own JSON Schema validator (broker/schema.c,
through build/bin/schema_check) and an independent one (ajv 2020-12 with
ajv-formats, tests/schema/ajv-check.mjs) give the same verdict on every instance
of the corpus that tests/schema/make-corpus.py writes, and the verdict the
corpus expects.

Needs node and the pinned packages: npm ci --prefix tests/schema"""
import functools
import json
import os
import shutil
import subprocess
import sys

from harness import BIN, ROOT, check

SCHEMA_DIR = os.path.join(ROOT, "schemas")
SCHEMA_TESTS = os.path.join(ROOT, "tests", "schema")
SCHEMA_CHECK = os.path.join(os.path.dirname(os.path.abspath(BIN)), "schema_check")
AJV_CHECK = os.path.join(SCHEMA_TESTS, "ajv-check.mjs")
MAKE_CORPUS = os.path.join(SCHEMA_TESTS, "make-corpus.py")
MIN_TOTAL, MIN_EACH = 200, 80


def node():
    exe = shutil.which("node")
    check(exe is not None, "node is installed (the ajv side of the test runs on it)")
    for pkg in ("ajv", "ajv-formats"):
        path = os.path.join(SCHEMA_TESTS, "node_modules", pkg, "package.json")
        check(os.path.exists(path),
              "%s is installed under tests/schema/node_modules: run `npm ci --prefix tests/schema`" % pkg,
              path, "missing")
    return exe


@functools.lru_cache(maxsize=None)
def corpus():
    proc = subprocess.run([sys.executable, MAKE_CORPUS, SCHEMA_DIR], capture_output=True, timeout=60)
    check(proc.returncode == 0, "make-corpus.py succeeds", 0, (proc.returncode, proc.stderr.decode()[-2000:]))
    cases = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    again = subprocess.run([sys.executable, MAKE_CORPUS, SCHEMA_DIR], capture_output=True, timeout=60)
    check(again.stdout == proc.stdout, "make-corpus.py is deterministic (two runs, same bytes)")
    return tuple(cases)


def run_validator(argv, lines, what):
    proc = subprocess.run(argv, input="".join(l + "\n" for l in lines).encode("utf-8"),
                          capture_output=True, timeout=120)
    out = proc.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "":
        out.pop()
    check(proc.returncode == 0, "%s runs and parses every line" % what, 0,
          (proc.returncode, proc.stderr.decode()[-2000:], [o for o in out if o.startswith("unparsable")][:5]))
    check(len(out) == len(lines), "%s prints one line per instance" % what, len(lines), len(out))
    return out


@functools.lru_cache(maxsize=None)
def verdicts():
    """[(case, C output line, ajv output line)] in corpus order."""
    check(os.access(SCHEMA_CHECK, os.X_OK), "schema_check is built next to the broker (make)", SCHEMA_CHECK,
          "missing")
    exe = node()
    cases = corpus()
    results = [None] * len(cases)
    for schema in sorted({c["schema"] for c in cases}):
        idx = [i for i, c in enumerate(cases) if c["schema"] == schema]
        lines = [json.dumps(cases[i]["instance"], ensure_ascii=cases[i].get("ascii", False)) for i in idx]
        c_out = run_validator([SCHEMA_CHECK, SCHEMA_DIR, schema], lines, "schema_check on %s" % schema)
        ajv_out = run_validator([exe, AJV_CHECK, SCHEMA_DIR, schema], lines, "ajv-check.mjs on %s" % schema)
        for i, c_line, ajv_line in zip(idx, c_out, ajv_out):
            results[i] = (cases[i], c_line, ajv_line)
    return tuple(results)


def word(line):
    return line.split(" ", 1)[0]


def rest(line, limit=600):
    text = line.split(" ", 1)[1] if " " in line else ""
    return text if len(text) <= limit else text[:limit] + "..."


def test_corpus_has_enough_valid_and_invalid_instances():
    cases = corpus()
    names = [(c["schema"], c["name"]) for c in cases]
    check(len(set(names)) == len(names), "corpus names are unique per schema",
          [], sorted({n for n in names if names.count(n) > 1}))
    bad = [c["name"] for c in cases if c.get("expect") not in ("valid", "invalid")]
    check(not bad, 'every corpus line has "expect": "valid" or "invalid"', [], bad)
    results = verdicts()
    valid = sum(1 for _, c, _ in results if word(c) == "valid")
    invalid = sum(1 for _, c, _ in results if word(c) == "invalid")
    per_schema = {}
    for case, c, _ in results:
        per_schema.setdefault(case["schema"], [0, 0])[word(c) != "valid"] += 1
    print("    corpus: %d instances; C verdicts: %d valid, %d invalid; per schema (valid, invalid): %s"
          % (len(results), valid, invalid, ", ".join("%s %d/%d" % (s, v, i) for s, (v, i) in sorted(per_schema.items()))))
    check(len(results) >= MIN_TOTAL, "the corpus has at least %d instances" % MIN_TOTAL, MIN_TOTAL, len(results))
    check(valid >= MIN_EACH, "at least %d instances are valid per the C validator" % MIN_EACH, MIN_EACH, valid)
    check(invalid >= MIN_EACH, "at least %d instances are invalid per the C validator" % MIN_EACH, MIN_EACH, invalid)


def test_c_validator_and_ajv_agree_on_every_instance():
    results = verdicts()
    disagree = [(case, c, a) for case, c, a in results if word(c) != word(a)]
    report = "\n".join("    [%s] %s: C %s, ajv %s\n        C errors: %s\n        ajv errors: %s"
                       % (case["schema"], case["name"], word(c), word(a), rest(c), rest(a))
                       for case, c, a in disagree)
    check(not disagree, "C validator and ajv agree on all %d instances; %d disagree:\n%s"
          % (len(results), len(disagree), report), 0, len(disagree))


def test_both_validators_give_the_expected_verdict():
    results = verdicts()
    wrong = []
    for case, c, a in results:
        for who, line in (("C", c), ("ajv", a)):
            if word(line) != case["expect"]:
                wrong.append("    [%s] %s: expected %s, %s says %s %s"
                             % (case["schema"], case["name"], case["expect"], who, word(line), rest(line, 300)))
    invalid = sum(1 for case, _, _ in results if case["expect"] == "invalid")
    print("    %d instances expected invalid, %d expected valid" % (invalid, len(results) - invalid))
    check(not wrong, "both validators give every instance the verdict the corpus expects; wrong:\n%s"
          % "\n".join(wrong), 0, len(wrong))
