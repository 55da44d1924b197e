#!/usr/bin/python3
"""Writes the corpus of the schema agreement test (tests/integration/03-schema-agreement.py)
to stdout as JSON Lines, one instance per line:

    {"schema": "review-completed.v1.json" | "cloudevent.v1.json",
     "name": "short description", "expect": "valid" | "invalid", "instance": ...}

and, on a few lines, "ascii": true: serialize that instance with every non-ASCII
character as a \\u escape (surrogate pairs included) instead of raw UTF-8.

Deterministic (no randomness, no clock); standard library only. The vocabulary
codes are read from schemas/vocabulary.v1.json so that every code of every set
is used once, whatever the vocabulary holds.

Usage: /usr/bin/python3 tests/schema/make-corpus.py [SCHEMA_DIR] > corpus.jsonl

Left out on purpose: inputs on which ajv + ajv-formats 3.0.1 and the broker's
C validator are known to disagree, so that the test checks agreement where both
are right instead of enshrining either side's mistake:
  - date-time offsets without a colon ("+0530") or with hours only ("+05"):
    ajv-formats accepts them, RFC 3339 (time-numoffset = ("+" / "-") time-hour
    ":" time-minute) does not, nor does the C validator.
  - any Unicode white space other than U+0020 between date and time (tab, LF,
    VT, FF, NBSP, U+2028, U+3000, U+FEFF, ...): ajv-formats splits on /t|\\s/i
    and accepts them; the C validator does not.
  - a plain space between date and time ("2026-03-01 14:30:00Z"): both accept
    it, but RFC 3339's date-time ABNF requires "T" (the space is only a note),
    so the C validator is lenient there; not put in the corpus either way.
  - second fractions that round up to the next second in binary floating point
    ("14:30:59.99999999999999999Z", or fifteen nines as in the official JSON
    Schema Test Suite's "a second fraction of fifteen nines is valid"): ajv-formats
    parses the seconds with parseFloat, gets 60 (or 61) and rejects a valid
    date-time; the C validator accepts it.
  - JSON that jansson does not decode at all (schema_check says "unparsable"):
    integers outside int64, reals that overflow a double, lone surrogates
    ("\\ud800"), "\\u0000" in a string.
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "schemas")
REVIEW = "review-completed.v1.json"
ENVELOPE = "cloudevent.v1.json"

with open(os.path.join(SCHEMA_DIR, "vocabulary.v1.json"), encoding="utf-8") as f:
    VOCAB = {name: [t["code"] for t in s["terms"]] for name, s in json.load(f)["sets"].items()}

BASE_REVIEW = {
    "review_id": "TN-2026-0001",
    "jurisdiction": "US-TN",
    "finalized_at": "2026-03-01T14:30:00Z",
    "incident": {
        "type": "fatality",
        "cause": VOCAB["cause"][0],
        "month": "2026-01",
        "child_age_band": "0-3",
        "prior_agency_involvement": True,
    },
    "improvement_opportunities": [
        {
            "theme": VOCAB["theme"][0],
            "subtheme": VOCAB["subtheme"][0],
            "partner": VOCAB["partner"][0],
            "seips_domain": "organization",
            "priority": "high",
            "summary": "Hospital and agency did not share the discharge plan.",
        }
    ],
    "family_needs": [VOCAB["family_need"][0]],
}

BASE_ENVELOPE = {
    "specversion": "1.0",
    "id": "evt-0001",
    "source": "urn:npcs:jurisdiction:US-TN",
    "type": "org.npcs.review.completed.v1",
    "time": "2026-03-01T14:31:00Z",
    "datacontenttype": "application/json",
    "data": BASE_REVIEW,
}

MISSING = object()  # a value that deletes the member
out = []
names = set()


def emit(schema, name, expect, instance, ascii=False):
    assert expect in ("valid", "invalid")
    key = (schema, name)
    assert key not in names, "duplicate case name: %s" % name
    names.add(key)
    line = {"schema": schema, "name": name, "expect": expect, "instance": copy.deepcopy(instance)}
    if ascii:
        line["ascii"] = True
    out.append(line)


def with_(base, path, value):
    """A deep copy of base with the member at path (a tuple of keys and indexes)
    set to value, or removed if value is MISSING."""
    doc = copy.deepcopy(base)
    node = doc
    for k in path[:-1]:
        node = node[k]
    if value is MISSING:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def review(name, expect, path, value, ascii=False):
    emit(REVIEW, name, expect, with_(BASE_REVIEW, path, value), ascii)


def envelope(name, expect, path, value, ascii=False):
    emit(ENVELOPE, name, expect, with_(BASE_ENVELOPE, path, value), ascii)


IO = ("improvement_opportunities", 0)


def opportunity(i):
    """A valid improvement opportunity, varied by i."""
    return {
        "theme": VOCAB["theme"][i % len(VOCAB["theme"])],
        "seips_domain": ["person", "tasks", "tools_technology", "organization",
                         "internal_environment", "external_environment"][i % 6],
        "priority": ["low", "medium", "high"][i % 3],
    }


# Every date-time case is used for review.finalized_at and for the envelope's time.
DATE_TIMES_VALID = [
    ("UTC Z", "2026-03-01T14:30:00Z"),
    ("lower-case t and z", "2026-03-01t14:30:00z"),
    ("lower-case t, upper-case Z", "2026-03-01t14:30:00Z"),
    ("offset +05:30", "2026-03-01T14:30:00+05:30"),
    ("offset -08:00", "2026-03-01T06:30:00-08:00"),
    ("offset -00:00 (unknown local offset)", "2026-03-01T14:30:00-00:00"),
    ("offset +23:59", "2026-03-01T14:30:00+23:59"),
    ("fraction of one digit", "2026-03-01T14:30:00.5Z"),
    ("fraction of nine digits with offset", "2026-03-01T14:30:00.123456789+01:00"),
    ("leap day 2024-02-29", "2024-02-29T12:00:00Z"),
    ("leap day 2000-02-29 (divisible by 400)", "2000-02-29T12:00:00Z"),
    ("leap second 23:59:60Z", "1998-12-31T23:59:60Z"),
    ("leap second with fraction", "2016-12-31T23:59:60.5Z"),
    ("leap second at 15:59:60-08:00 (23:59:60 UTC)", "1998-12-31T15:59:60.123-08:00"),
    ("leap second at 00:29:60+00:30 (23:59:60 UTC)", "1999-01-01T00:29:60+00:30"),
    ("end of year 23:59:59.999", "2025-12-31T23:59:59.999Z"),
    ("31st of a long month", "2026-07-31T00:00:00Z"),
    ("year 0000", "0000-01-01T00:00:00Z"),
]
DATE_TIMES_INVALID = [
    ("2023-02-29 (not a leap year)", "2023-02-29T12:00:00Z"),
    ("1900-02-29 (century, not a leap year)", "1900-02-29T12:00:00Z"),
    ("2026-04-31", "2026-04-31T12:00:00Z"),
    ("2026-02-30", "2026-02-30T12:00:00Z"),
    ("month 13", "2026-13-01T12:00:00Z"),
    ("day 00", "2026-03-00T12:00:00Z"),
    ("missing time zone", "2026-03-01T14:30:00"),
    ("hour 24", "2026-03-01T24:00:00Z"),
    ("minute 60", "2026-03-01T14:60:00Z"),
    ("second 61", "1998-12-31T23:59:61Z"),
    ("second 60 on a wrong minute", "1998-12-31T23:58:60Z"),
    ("second 60 on a wrong hour", "1998-12-31T22:59:60Z"),
    ("second 60 at 23:59 local but 22:59 UTC", "1998-12-31T23:59:60+01:00"),
    ("non-padded month 2026-1-01", "2026-1-01T12:00:00Z"),
    ("non-padded day", "2026-01-1T12:00:00Z"),
    ("date only", "2026-03-01"),
    ("time only", "14:30:00Z"),
    ("no seconds", "2026-03-01T14:30Z"),
    ("empty fraction", "2026-03-01T14:30:00.Z"),
    ("comma fraction", "2026-03-01T14:30:00,5Z"),
    ("offset hour 24", "2026-03-01T14:30:00-24:00"),
    ("offset minute 60", "2026-03-01T14:30:00+10:60"),
    ("offset with one hour digit", "2026-03-01T14:30:00+5:30"),
    ("Z after an offset", "2026-03-01T14:30:00+01:00Z"),
    ("trailing space", "2026-03-01T14:30:00Z "),
    ("trailing newline", "2026-03-01T14:30:00Z\n"),
    ("leading space", " 2026-03-01T14:30:00Z"),
    ("other separator X", "2026-03-01X14:30:00Z"),
    ("no separator", "2026-03-0114:30:00Z"),
    ("extended year", "+12026-03-01T14:30:00Z"),
    ("ordinal date (ISO 8601, not RFC 3339)", "2026-060T14:30:00Z"),
    ("Bengali digit in the date", "2026-03-0\u09ecT14:30:00Z"),
    ("Bengali digit in the time", "2026-03-01T1\u09ea:30:00Z"),
    ("fullwidth Z", "2026-03-01T14:30:00\uff3a"),
    ("US format", "03/01/2026 14:30:00 PST"),
    ("empty string", ""),
]


def review_cases():
    emit(REVIEW, "base review", "valid", BASE_REVIEW)
    minimal = copy.deepcopy(BASE_REVIEW)
    minimal["improvement_opportunities"] = [{"theme": VOCAB["theme"][1], "seips_domain": "person",
                                             "priority": "low"}]
    minimal["family_needs"] = []
    emit(REVIEW, "minimal review: no optional member, no family need", "valid", minimal)

    # required, at each level
    for k in BASE_REVIEW:
        review("missing required %s" % k, "invalid", (k,), MISSING)
    for k in BASE_REVIEW["incident"]:
        review("missing required incident.%s" % k, "invalid", ("incident", k), MISSING)
    for k in ("theme", "seips_domain", "priority"):
        review("missing required improvement_opportunities[0].%s" % k, "invalid", IO + (k,), MISSING)
    for k in ("subtheme", "partner", "summary"):
        review("optional improvement_opportunities[0].%s left out" % k, "valid", IO + (k,), MISSING)
    emit(REVIEW, "empty object", "invalid", {})

    # additionalProperties: false, at each level
    review("unknown member at the top", "invalid", ("notes",), "x")
    review("member name differing in case only", "invalid", ("Review_id",), "TN-1")
    review("unknown member in incident", "invalid", ("incident", "date"), "2026-01-15")
    review("unknown member in an improvement opportunity", "invalid", IO + ("owner",), "x")
    review("unknown member with a null value", "invalid", ("extra",), None)

    # wrong types
    for path, value, what in [
        (("review_id",), 1234, "number for string review_id"),
        (("review_id",), None, "null review_id"),
        (("jurisdiction",), 47, "number for string jurisdiction"),
        (("jurisdiction",), ["US-TN"], "array for string jurisdiction"),
        (("finalized_at",), 1772375400, "number for date-time finalized_at"),
        (("finalized_at",), None, "null finalized_at"),
        (("incident",), [], "array for object incident"),
        (("incident",), None, "null incident"),
        (("incident",), "fatality", "string for object incident"),
        (("incident", "type"), None, "null incident.type"),
        (("incident", "type"), 1, "number for enum incident.type"),
        (("incident", "cause"), ["suid"], "array for vocabulary incident.cause"),
        (("incident", "month"), 202601, "number for string incident.month"),
        (("incident", "child_age_band"), 3, "number for enum child_age_band"),
        (("incident", "prior_agency_involvement"), "true", "string for boolean"),
        (("incident", "prior_agency_involvement"), 1, "number for boolean"),
        (("incident", "prior_agency_involvement"), None, "null for boolean"),
        (("improvement_opportunities",), {"theme": "training"}, "object for array improvement_opportunities"),
        (("improvement_opportunities",), None, "null improvement_opportunities"),
        (("improvement_opportunities", 0), "training", "string for object improvement opportunity"),
        (("improvement_opportunities", 0), [], "array for object improvement opportunity"),
        (IO + ("theme",), 3, "number for vocabulary theme"),
        (IO + ("theme",), None, "null theme"),
        (IO + ("priority",), True, "boolean for enum priority"),
        (IO + ("summary",), 42, "number for string summary"),
        (IO + ("summary",), None, "null summary"),
        (("family_needs",), "housing", "string for array family_needs"),
        (("family_needs",), {"0": "housing"}, "object for array family_needs"),
        (("family_needs", 0), 7, "number for a family need"),
        (("family_needs", 0), None, "null family need"),
    ]:
        review(what, "invalid", path, value)
    for value, what in [([BASE_REVIEW], "array"), ("review", "string"), (None, "null"), (1, "number")]:
        emit(REVIEW, "%s instead of an object at the top" % what, "invalid", value)

    # plain enums
    for v in ("fatality", "near_fatality", "serious_injury"):
        review("incident.type %s" % v, "valid", ("incident", "type"), v)
    for v in ("Fatality", "near-fatality", "fatality "):
        review("incident.type %r" % v, "invalid", ("incident", "type"), v)
    for v in ("0-3", "4-7", "8-12", "13-17"):
        review("child_age_band %s" % v, "valid", ("incident", "child_age_band"), v)
    for v in ("0-4", "18+", "0 - 3", ""):
        review("child_age_band %r" % v, "invalid", ("incident", "child_age_band"), v)
    review("prior_agency_involvement false", "valid", ("incident", "prior_agency_involvement"), False)
    for v in ("person", "tasks", "tools_technology", "organization", "internal_environment",
              "external_environment"):
        review("seips_domain %s" % v, "valid", IO + ("seips_domain",), v)
    for v in ("Person", "tools", "tools technology"):
        review("seips_domain %r" % v, "invalid", IO + ("seips_domain",), v)
    for v in ("low", "medium", "high"):
        review("priority %s" % v, "valid", IO + ("priority",), v)
    for v in ("urgent", "HIGH", "high "):
        review("priority %r" % v, "invalid", IO + ("priority",), v)

    # vocabulary: every code of every set once, then near misses
    where = {"theme": IO + ("theme",), "subtheme": IO + ("subtheme",), "partner": IO + ("partner",),
             "cause": ("incident", "cause"), "family_need": ("family_needs", 0)}
    for set_name, path in where.items():
        for code in VOCAB[set_name]:
            review("%s code %s" % (set_name, code), "valid", path, code)
    for set_name, path in where.items():
        code = VOCAB[set_name][-1]
        others = [c for s, codes in VOCAB.items() if s != set_name for c in codes
                  if c not in VOCAB[set_name]]
        for value, what in [(code.upper(), "upper case"), (code + " ", "trailing space"),
                            (" " + code, "leading space"), (code.replace("_", "-") if "_" in code
                                                            else code + "-", "hyphen variant"),
                            ("", "empty string"), (others[0], "code of another set")]:
            review("%s near miss (%s) %r" % (set_name, what, value), "invalid", path, value)

    # jurisdiction pattern
    for v in ("US-TN", "US-CA-LAC", "CA-ON", "US-A-B-C", "US-ABCDEFGHIJKL", "US-123", "US-NN-X1Y2Z3"):
        review("jurisdiction %s" % v, "valid", ("jurisdiction",), v)
    for v in ("us-tn", "U-TN", "US-", "US-TOOLONGSEGMENT123", "US-ABCDEFGHIJKLM", "US-A-B-C-D",
              "USA-TN", "US_TN", "US", "US--TN", "US-tn", "US-TN ", " US-TN", "US-TN\n", "US-T\u00d1",
              ""):
        review("jurisdiction %r" % v, "invalid", ("jurisdiction",), v)

    # review_id
    for v in ("a", "0", "A" * 64, "TN:2026:0001", "x.y_z-1", "a-"):
        review("review_id %r" % (v if len(v) < 20 else "%d characters" % len(v)), "valid",
               ("review_id",), v)
    for v, what in [("", "empty"), ("A" * 65, "65 characters"), ("-abc", "leading hyphen"),
                    (".abc", "leading dot"), ("_x", "leading underscore"), ("has space", "space"),
                    ("abc/def", "slash"), ("abc\n", "trailing newline"), ("r\u00e9v", "non-ASCII")]:
        review("review_id %s" % what, "invalid", ("review_id",), v)

    # incident.month YYYY-MM
    for v in ("1900-01", "2099-12", "2026-09", "2026-10"):
        review("month %s" % v, "valid", ("incident", "month"), v)
    for v in ("2026-00", "2026-13", "1899-12", "2100-01", "2026-1", "26-01", "2026-01-15", "2026/01",
              "2026-1a", "", "\uff12\uff10\uff12\uff16-01", "2026-01\n"):
        review("month %r" % v, "invalid", ("incident", "month"), v)

    # date-time
    for what, v in DATE_TIMES_VALID:
        review("finalized_at %s" % what, "valid", ("finalized_at",), v)
    for what, v in DATE_TIMES_INVALID:
        review("finalized_at %s" % what, "invalid", ("finalized_at",), v)

    # summary maxLength 4000, counted in code points
    for unit, what, ascii in [("x", "ASCII", False), ("\u00e9", "2-byte UTF-8", False),
                              ("\u20ac", "3-byte UTF-8", False), ("\U0001F600", "4-byte UTF-8 (emoji)", False),
                              ("\U0001F600", "emoji, written as \\u surrogate pairs,", True)]:
        review("summary of 4000 %s characters" % what, "valid", IO + ("summary",), unit * 4000, ascii)
        review("summary of 4001 %s characters" % what, "invalid", IO + ("summary",), unit * 4001, ascii)
    review("summary of 2000 e + combining acute (4000 code points)", "valid", IO + ("summary",),
           "e\u0301" * 2000)
    review("summary of 2000 e + combining acute and one more", "invalid", IO + ("summary",),
           "e\u0301" * 2000 + "e")
    review("summary of 3999 ASCII + one emoji", "valid", IO + ("summary",), "x" * 3999 + "\U0001F600")
    review("empty summary", "valid", IO + ("summary",), "")

    # improvement_opportunities: minItems 1, maxItems 50
    review("improvement_opportunities with 0 items", "invalid", ("improvement_opportunities",), [])
    review("improvement_opportunities with 50 items", "valid", ("improvement_opportunities",),
           [opportunity(i) for i in range(50)])
    review("improvement_opportunities with 51 items", "invalid", ("improvement_opportunities",),
           [opportunity(i) for i in range(51)])
    review("a bad item among 50", "invalid", ("improvement_opportunities",),
           [opportunity(i) for i in range(49)] + [dict(opportunity(49), priority="critical")])

    # family_needs: maxItems 20, no uniqueness required
    needs = VOCAB["family_need"]
    review("family_needs with every code", "valid", ("family_needs",), list(needs))
    review("family_needs with 20 items (repeats allowed)", "valid", ("family_needs",),
           [needs[i % len(needs)] for i in range(20)])
    review("family_needs with 21 items", "invalid", ("family_needs",),
           [needs[i % len(needs)] for i in range(21)])
    review("family_needs with a bad code last", "invalid", ("family_needs",), list(needs[:3]) + ["Housing"])


def envelope_cases():
    emit(ENVELOPE, "base envelope", "valid", BASE_ENVELOPE)
    envelope("without the optional datacontenttype", "valid", ("datacontenttype",), MISSING)
    for k in ("specversion", "id", "source", "type", "time", "data"):
        envelope("missing required %s" % k, "invalid", (k,), MISSING)
    emit(ENVELOPE, "empty object", "invalid", {})
    for value, what in [([BASE_ENVELOPE], "array"), ("{}", "string"), (None, "null")]:
        emit(ENVELOPE, "%s instead of an object" % what, "invalid", value)

    # the envelope does not look inside data: an invalid review is still a valid envelope
    envelope("data is an invalid review", "valid", ("data",), {"review_id": 1})
    envelope("data is an empty object", "valid", ("data",), {})
    for value, what in [([], "array"), ("{}", "string"), (None, "null"), (1, "number")]:
        envelope("data is %s" % what, "invalid", ("data",), value)

    # specversion: const
    for v, what in [("1.0.0", "'1.0.0'"), ("1", "'1'"), (1.0, "number 1.0"), (None, "null"), ("", "empty")]:
        envelope("specversion %s" % what, "invalid", ("specversion",), v)
    # type: any non-empty string here; which types are accepted is event-types.json's to say
    # (the broker refuses an unlisted one with 422 after the envelope is valid)
    for v in ("org.npcs.review.completed.v2", "org.npcs.review.completed.V1", "review.completed",
              "org.npcs.review.completed.v1 "):
        envelope("type %r" % v, "valid", ("type",), v)
    envelope("type number", "invalid", ("type",), 1)
    envelope("type empty", "invalid", ("type",), "")
    envelope("type null", "invalid", ("type",), None)
    envelope("type array", "invalid", ("type",), ["org.npcs.review.completed.v1"])

    # source pattern
    for code in ("US-CA-LAC", "CA-ON", "US-A-B-C", "US-ABCDEFGHIJKL"):
        envelope("source for %s" % code, "valid", ("source",), "urn:npcs:jurisdiction:" + code)
    for v in ("urn:npcs:jurisdiction:us-tn", "urn:npcs:jurisdiction:", "urn:npcs:jurisdiction:US-",
              "urn:npcs:jurisdiction:US-TOOLONGSEGMENT123", "urn:npcs:jurisdiction:US-A-B-C-D",
              "URN:npcs:jurisdiction:US-TN", "urn:npcs:jurisdiction:US-TN/x", "https://example.org/US-TN",
              " urn:npcs:jurisdiction:US-TN", "urn:npcs:jurisdiction:US-TN\n", "urn:npcs:agency:US-TN"):
        envelope("source %r" % v, "invalid", ("source",), v)
    envelope("source number", "invalid", ("source",), 42)

    # id: string, 1..128 code points
    for v, what in [("x", "1 character"), ("x" * 128, "128 characters"),
                    ("\u00e9" * 128, "128 two-byte characters"), ("\U0001F600" * 128, "128 emoji")]:
        envelope("id of %s" % what, "valid", ("id",), v)
    for v, what in [("", "0 characters"), ("x" * 129, "129 characters"),
                    ("\u00e9" * 129, "129 two-byte characters"), ("\U0001F600" * 129, "129 emoji")]:
        envelope("id of %s" % what, "invalid", ("id",), v)
    envelope("id of 129 emoji as \\u escapes", "invalid", ("id",), "\U0001F600" * 129, ascii=True)
    envelope("id number", "invalid", ("id",), 42)
    envelope("id null", "invalid", ("id",), None)

    # time
    for what, v in DATE_TIMES_VALID:
        envelope("time %s" % what, "valid", ("time",), v)
    for what, v in DATE_TIMES_INVALID:
        envelope("time %s" % what, "invalid", ("time",), v)
    envelope("time number", "invalid", ("time",), 1772375400)

    # datacontenttype enum
    envelope("datacontenttype with charset", "valid", ("datacontenttype",), "application/json; charset=utf-8")
    for v in ("text/plain", "application/json;charset=utf-8", "APPLICATION/JSON", "application/json ",
              "application/cloudevents+json", ""):
        envelope("datacontenttype %r" % v, "invalid", ("datacontenttype",), v)
    envelope("datacontenttype null", "invalid", ("datacontenttype",), None)

    # dataschema, subject: strings with a maxLength
    envelope("dataschema of 512 characters", "valid", ("dataschema",), "urn:x:" + "a" * 506)
    envelope("dataschema of 513 characters", "invalid", ("dataschema",), "urn:x:" + "a" * 507)
    envelope("dataschema number", "invalid", ("dataschema",), 1)
    envelope("subject of 256 characters", "valid", ("subject",), "s" * 256)
    envelope("subject of 256 two-byte characters", "valid", ("subject",), "\u00e9" * 256)
    envelope("subject of 257 characters", "invalid", ("subject",), "s" * 257)
    envelope("subject empty", "valid", ("subject",), "")
    envelope("subject boolean", "invalid", ("subject",), False)

    # extension attributes: additionalProperties {"type": ["string", "integer", "boolean"]}
    for v, what in [("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "string"), ("", "empty string"),
                    (42, "integer"), (0, "zero"), (-7, "negative integer"), (2 ** 53 + 1, "integer 2^53+1"),
                    (2 ** 63 - 1, "integer 2^63-1"), (1.0, "1.0 (an integer in 2020-12)"),
                    (100.0, "100.0"), (-0.0, "-0.0"), (True, "true"), (False, "false")]:
        envelope("extension attribute %s" % what, "valid", ("ext",), v)
    for v, what in [({"a": 1}, "object"), ({}, "empty object"), ([], "array"), (["x"], "array of string"),
                    (None, "null"), (1.5, "1.5"), (0.001, "0.001"), (-2.5, "-2.5")]:
        envelope("extension attribute %s" % what, "invalid", ("ext",), v)
    envelope("several extension attributes", "valid", ("traceparent",), "00-x-y-01")
    several = copy.deepcopy(BASE_ENVELOPE)
    several.update({"sequence": 7, "partitionkey": "US-TN", "sampled": True})
    emit(ENVELOPE, "string, integer and boolean extensions together", "valid", several)
    several["nested"] = {"k": "v"}
    emit(ENVELOPE, "an object extension among valid ones", "invalid", several)


review_cases()
envelope_cases()
sink = sys.stdout.buffer
for line in out:
    ascii = line.get("ascii", False)
    sink.write(json.dumps(line, ensure_ascii=ascii, sort_keys=False).encode("utf-8") + b"\n")
