/* schema: the JSON Schema subset, keyword by keyword, against small schema
 * directories written for each test; the load-time errors; the vocabulary
 * turned into enumerations; the registry of event types; and the
 * repository's own schemas/. */
#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schema.h"
#include "test_schemas.h"
#include "test_util.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

/* Schema directories live in run_dir, which main() removes at the end, also
 * when a failed test (which ends its process early) left its files. */
static char run_dir[64];
static char dir_path[128];
static char schemas_dir[4096];

/* Creates a fresh directory holding the given files: pairs of (name, content),
 * ended by NULL. Returns its path (valid until the next call). */
static const char *make_dir(const char *name, ...)
{
    snprintf(dir_path, sizeof(dir_path), "%s/d-XXXXXX", run_dir);
    ck_assert_msg(mkdtemp(dir_path) != NULL, "cannot create a directory in %s", run_dir);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *content = va_arg(ap, const char *);
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir_path, n);
        FILE *f = fopen(path, "w");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        ck_assert_msg(fputs(content, f) >= 0, "cannot write %s", path);
        fclose(f);
    }
    va_end(ap);
    return dir_path;
}

static struct schema_set *load_ok(const char *dir)
{
    char err[1024] = "";
    struct schema_set *set = NULL;
    enum sn_err rc = schema_set_load(dir, &set, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "loading %s: expected SN_OK, got %d: %s", dir, rc, err);
    ck_assert_ptr_nonnull(set);
    return set;
}

/* Loads dir, which must be refused; the message is left in err. */
static void load_fails(const char *dir, char *err, size_t errlen)
{
    struct schema_set *set = NULL;
    err[0] = '\0';
    enum sn_err rc = schema_set_load(dir, &set, err, errlen);
    ck_assert_msg(rc == SN_ERR_CONF, "loading %s: expected SN_ERR_CONF (%d), got %d (%s)", dir,
                  SN_ERR_CONF, rc, err);
    ck_assert_msg(set == NULL, "a refused load set *out");
    ck_assert_msg(err[0] != '\0', "a refused load left no message");
}

static json_t *parse(const char *text)
{
    return test_json_parse(text, JSON_DECODE_ANY | JSON_ALLOW_NUL);
}

/* Validates text against schema id and checks the violations: exactly the
 * pointers in want (NULL-terminated; any order), each with a message. */
static void expect_pointers(const struct schema_set *set, const char *id, const char *text,
                            const char *prefix, const char **want)
{
    json_t *instance = parse(text);
    json_t *errors = json_array();
    size_t n = schema_validate(set, id, instance, prefix, errors);
    ck_assert_msg(n == json_array_size(errors), "returned %zu but appended %zu violations", n,
                  json_array_size(errors));
    const char *got[256];
    ck_assert_int_lt(n, 256);
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        got[i] = json_string_value(json_object_get(e, "pointer"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        ck_assert_msg(got[i] != NULL, "violation %zu has no pointer", i);
        ck_assert_msg(msg && msg[0], "violation %zu (%s) has no message", i, got[i]);
    }
    const char *want_copy[256];
    size_t nwant = 0;
    while (want[nwant]) {
        want_copy[nwant] = want[nwant];
        nwant++;
    }
    char *g = test_sorted_lines(got, n), *w = test_sorted_lines(want_copy, nwant);
    ck_assert_msg(n == nwant && strcmp(g, w) == 0,
                  "%s with schema %s (prefix '%s'): expected %zu violations:\n%sgot %zu:\n%s", text,
                  id, prefix, nwant, w, n, g);
    free(g);
    free(w);
    json_decref(errors);
    json_decref(instance);
}

#define NONE                        ((const char *[]){NULL})
#define PTRS(...)                   ((const char *[]){__VA_ARGS__, NULL})
#define expect_valid(set, id, text) expect_pointers((set), (id), (text), "", NONE)
#define expect_invalid(set, id, text, ...)                                                         \
    expect_pointers((set), (id), (text), "", PTRS(__VA_ARGS__))

/* Validates text, expecting exactly one violation at pointer whose message
 * contains what. */
static void expect_message(const struct schema_set *set, const char *id, const char *text,
                           const char *pointer, const char *what)
{
    json_t *instance = parse(text);
    json_t *errors = json_array();
    size_t n = schema_validate(set, id, instance, "", errors);
    char *dump = json_dumps(errors, JSON_COMPACT);
    ck_assert_msg(n == 1, "%s: expected 1 violation, got %zu: %s", text, n, dump);
    json_t *e = json_array_get(errors, 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "pointer")), pointer);
    ck_assert_contains(json_string_value(json_object_get(e, "message")), what);
    free(dump);
    json_decref(errors);
    json_decref(instance);
}

/* One schema file s.json holding body (an object's members, without braces). */
static struct schema_set *one_schema(const char *body)
{
    char text[4096];
    snprintf(text, sizeof(text), "{\"$id\": \"s.json\", %s}", body);
    return load_ok(make_dir("s.json", text, NULL));
}

/* ---- keywords ---- */

START_TEST(test_type)
{
    struct schema_set *set = one_schema("\"type\": \"integer\"");
    expect_valid(set, "s.json", "2");
    expect_valid(set, "s.json", "-7");
    expect_valid(set, "s.json", "2.0"); /* an integer written with a fraction of zero */
    expect_invalid(set, "s.json", "2.5", "");
    expect_invalid(set, "s.json", "\"2\"", "");
    expect_invalid(set, "s.json", "true", "");
    expect_invalid(set, "s.json", "null", "");
    expect_message(set, "s.json", "2.5", "", "must be of type integer, is number");
    expect_message(set, "s.json", "\"2\"", "", "must be of type integer, is string");
    schema_set_free(set);

    set = one_schema("\"type\": \"number\"");
    expect_valid(set, "s.json", "2");
    expect_valid(set, "s.json", "2.5");
    expect_invalid(set, "s.json", "\"2.5\"", "");
    schema_set_free(set);

    set = one_schema("\"type\": \"boolean\"");
    expect_valid(set, "s.json", "true");
    expect_valid(set, "s.json", "false");
    expect_invalid(set, "s.json", "0", "");
    expect_invalid(set, "s.json", "\"true\"", "");
    schema_set_free(set);

    set = one_schema("\"type\": \"object\"");
    expect_valid(set, "s.json", "{}");
    expect_invalid(set, "s.json", "[]", "");
    expect_invalid(set, "s.json", "null", "");
    schema_set_free(set);

    set = one_schema("\"type\": \"array\"");
    expect_valid(set, "s.json", "[1]");
    expect_invalid(set, "s.json", "{}", "");
    schema_set_free(set);

    set = one_schema("\"type\": \"null\"");
    expect_valid(set, "s.json", "null");
    expect_invalid(set, "s.json", "false", "");
    schema_set_free(set);

    set = one_schema("\"type\": [\"string\", \"null\"]");
    expect_valid(set, "s.json", "\"x\"");
    expect_valid(set, "s.json", "null");
    expect_invalid(set, "s.json", "1", "");
    expect_message(set, "s.json", "1", "", "\"string\", \"null\"");
    schema_set_free(set);

    set = one_schema("\"type\": \"string\"");
    expect_valid(set, "s.json", "\"\"");
    expect_invalid(set, "s.json", "{\"a\": 1}", "");
    schema_set_free(set);
}
END_TEST

START_TEST(test_required_and_properties)
{
    struct schema_set *set =
        one_schema("\"type\": \"object\", \"required\": [\"a\", \"b\"],"
                   "\"properties\": {\"a\": {\"type\": \"string\"},"
                   "  \"b\": {\"type\": \"object\", \"required\": [\"c\"],"
                   "          \"properties\": {\"c\": {\"type\": \"integer\"}}}}");
    expect_valid(set, "s.json", "{\"a\": \"x\", \"b\": {\"c\": 1}}");
    expect_valid(set, "s.json", "{\"a\": \"x\", \"b\": {\"c\": 1}, \"other\": [true]}");
    expect_invalid(set, "s.json", "{}", "/a", "/b");
    expect_invalid(set, "s.json", "{\"b\": {}}", "/a", "/b/c");
    expect_invalid(set, "s.json", "{\"a\": 1, \"b\": {\"c\": \"1\"}}", "/a", "/b/c");
    expect_message(set, "s.json", "{\"a\": \"x\"}", "/b", "is required");
    /* a value of the wrong type: one violation, nothing about required members */
    expect_invalid(set, "s.json", "[]", "");
    schema_set_free(set);
}
END_TEST

START_TEST(test_additional_properties)
{
    struct schema_set *set =
        one_schema("\"properties\": {\"a\": {}}, \"additionalProperties\": false");
    expect_valid(set, "s.json", "{\"a\": 1}");
    expect_valid(set, "s.json", "{}");
    expect_invalid(set, "s.json", "{\"a\": 1, \"x\": 1, \"y\": null}", "/x", "/y");
    expect_message(set, "s.json", "{\"zz\": 1}", "/zz", "is not an allowed property");
    schema_set_free(set);

    set = one_schema("\"properties\": {\"a\": {\"type\": \"string\"}},"
                     "\"additionalProperties\": {\"type\": \"integer\", \"minimum\": 0}");
    expect_valid(set, "s.json", "{\"a\": \"s\", \"n\": 3, \"m\": 0}");
    /* a declared property is not checked against additionalProperties */
    expect_invalid(set, "s.json", "{\"a\": 5}", "/a");
    expect_invalid(set, "s.json", "{\"a\": \"s\", \"n\": \"3\", \"m\": -1, \"k\": 2}", "/n", "/m");
    schema_set_free(set);

    /* true and absent allow anything */
    set = one_schema("\"properties\": {\"a\": {}}, \"additionalProperties\": true");
    expect_valid(set, "s.json", "{\"a\": 1, \"x\": {}}");
    schema_set_free(set);
}
END_TEST

START_TEST(test_items)
{
    struct schema_set *set =
        one_schema("\"type\": \"array\", \"items\": {\"type\": \"object\", \"required\": "
                   "[\"name\"], \"properties\": {\"name\": {\"type\": \"string\"}}}");
    expect_valid(set, "s.json", "[]");
    expect_valid(set, "s.json", "[{\"name\": \"a\"}, {\"name\": \"b\"}]");
    expect_invalid(set, "s.json", "[{\"name\": \"a\"}, 7, {}, {\"name\": 1}]", "/1", "/2/name",
                   "/3/name");
    schema_set_free(set);

    set = one_schema("\"items\": {\"items\": {\"type\": \"integer\"}}");
    expect_invalid(set, "s.json", "[[1, 2], [3, \"x\"], [], [null, 4, 5.5]]", "/1/1", "/3/0",
                   "/3/2");
    schema_set_free(set);

    set = one_schema("\"items\": false");
    expect_valid(set, "s.json", "[]");
    expect_invalid(set, "s.json", "[1, 2]", "/0", "/1");
    schema_set_free(set);
}
END_TEST

START_TEST(test_enum)
{
    struct schema_set *set = one_schema("\"enum\": [\"a\", 1, null, {\"k\": [1, \"x\"]}]");
    expect_valid(set, "s.json", "\"a\"");
    expect_valid(set, "s.json", "1");
    expect_valid(set, "s.json", "1.0"); /* numbers compare by value */
    expect_valid(set, "s.json", "null");
    expect_valid(set, "s.json", "{\"k\": [1.0, \"x\"]}");
    expect_invalid(set, "s.json", "\"b\"", "");
    expect_invalid(set, "s.json", "\"A\"", "");
    expect_invalid(set, "s.json", "2", "");
    expect_invalid(set, "s.json", "1.5", "");
    expect_invalid(set, "s.json", "\"1\"", "");
    expect_invalid(set, "s.json", "false", "");
    expect_invalid(set, "s.json", "{\"k\": [1, \"x\"], \"j\": 1}", "");
    expect_invalid(set, "s.json", "{\"k\": [\"x\", 1]}", "");
    expect_message(set, "s.json", "\"b\"", "", "must be one of: \"a\", 1, null");
    schema_set_free(set);
}
END_TEST

START_TEST(test_const)
{
    struct schema_set *set = one_schema("\"const\": 1");
    expect_valid(set, "s.json", "1");
    expect_valid(set, "s.json", "1.0");
    expect_invalid(set, "s.json", "2", "");
    expect_invalid(set, "s.json", "1.000001", "");
    expect_invalid(set, "s.json", "\"1\"", "");
    expect_invalid(set, "s.json", "true", "");
    expect_message(set, "s.json", "2", "", "must be 1");
    schema_set_free(set);

    set = one_schema("\"const\": 2.0");
    expect_valid(set, "s.json", "2");
    schema_set_free(set);

    set = one_schema("\"const\": {\"a\": [1, \"x\", {\"b\": null}]}");
    expect_valid(set, "s.json", "{\"a\": [1.0, \"x\", {\"b\": null}]}");
    expect_invalid(set, "s.json", "{\"a\": [1, \"x\", {\"b\": null}], \"c\": 1}", "");
    expect_invalid(set, "s.json", "{\"a\": [1, \"x\"]}", "");
    expect_invalid(set, "s.json", "{\"a\": [1, \"x\", {\"b\": false}]}", "");
    schema_set_free(set);

    set = one_schema("\"const\": \"1.0\"");
    expect_valid(set, "s.json", "\"1.0\"");
    expect_invalid(set, "s.json", "1.0", "");
    schema_set_free(set);
}
END_TEST

START_TEST(test_pattern)
{
    struct schema_set *set = one_schema("\"pattern\": \"^[a-z]+-[0-9]{2}$\"");
    expect_valid(set, "s.json", "\"ab-12\"");
    expect_invalid(set, "s.json", "\"AB-12\"", "");
    expect_invalid(set, "s.json", "\"ab-123\"", "");
    expect_invalid(set, "s.json", "\"x ab-12\"", "");
    expect_invalid(set, "s.json", "\"ab-12\\n\"", "");
    expect_invalid(set, "s.json", "\"ab-12\\u0000\"", ""); /* an embedded NUL never matches */
    expect_valid(set, "s.json", "12");                     /* pattern applies to strings only */
    expect_message(set, "s.json", "\"ab\"", "", "must match the pattern ^[a-z]+-[0-9]{2}$");
    schema_set_free(set);

    /* without anchors a pattern matches anywhere (JSON Schema semantics) */
    set = one_schema("\"pattern\": \"b+c\"");
    expect_valid(set, "s.json", "\"abbcd\"");
    expect_invalid(set, "s.json", "\"acb\"", "");
    schema_set_free(set);

    /* two equal patterns in different places are both enforced */
    set = one_schema("\"properties\": {\"x\": {\"pattern\": \"^x$\"}, \"y\": {\"pattern\": "
                     "\"^y$\"}, \"z\": {\"pattern\": \"^x$\"}}");
    expect_valid(set, "s.json", "{\"x\": \"x\", \"y\": \"y\", \"z\": \"x\"}");
    expect_invalid(set, "s.json", "{\"x\": \"y\", \"y\": \"x\", \"z\": \"y\"}", "/x", "/y", "/z");
    schema_set_free(set);
}
END_TEST

START_TEST(test_string_length_in_code_points)
{
    struct schema_set *set = one_schema("\"minLength\": 2, \"maxLength\": 3");
    expect_valid(set, "s.json", "\"ab\"");
    expect_valid(set, "s.json", "\"abc\"");
    expect_invalid(set, "s.json", "\"a\"", "");
    expect_invalid(set, "s.json", "\"abcd\"", "");
    expect_invalid(set, "s.json", "\"\"", "");
    /* e-acute is 2 bytes but 1 character: too short */
    expect_invalid(set, "s.json", "\"\\u00e9\"", "");
    expect_message(set, "s.json", "\"\\u00e9\"", "", "must be at least 2 characters long, is 1");
    /* 3 characters of 3 bytes each (9 bytes): fits */
    expect_valid(set, "s.json", "\"\\u65e5\\u672c\\u8a9e\"");
    /* 2 characters of 4 bytes each (an emoji as a surrogate pair in JSON): fits */
    expect_valid(set, "s.json", "\"\\ud83d\\ude00\\ud83d\\ude00\"");
    /* 4 emoji: too long, and counted as 4 */
    expect_message(set, "s.json", "\"\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\"",
                   "", "must be at most 3 characters long, is 4");
    expect_valid(set, "s.json", "5"); /* lengths apply to strings only */
    schema_set_free(set);
}
END_TEST

START_TEST(test_items_count)
{
    struct schema_set *set = one_schema("\"minItems\": 1, \"maxItems\": 2");
    expect_valid(set, "s.json", "[1]");
    expect_valid(set, "s.json", "[1, [2, 3, 4]]");
    expect_invalid(set, "s.json", "[]", "");
    expect_invalid(set, "s.json", "[1, 2, 3]", "");
    expect_message(set, "s.json", "[]", "", "must have at least 1 items, has 0");
    expect_message(set, "s.json", "[1, 2, 3]", "", "must have at most 2 items, has 3");
    expect_valid(set, "s.json", "{}"); /* counts apply to arrays only */
    schema_set_free(set);
}
END_TEST

START_TEST(test_minimum_maximum)
{
    struct schema_set *set = one_schema("\"minimum\": 1.5, \"maximum\": 10");
    expect_valid(set, "s.json", "1.5");
    expect_valid(set, "s.json", "10");
    expect_valid(set, "s.json", "10.0");
    expect_valid(set, "s.json", "2");
    expect_invalid(set, "s.json", "1", "");
    expect_invalid(set, "s.json", "1.49", "");
    expect_invalid(set, "s.json", "10.01", "");
    expect_invalid(set, "s.json", "11", "");
    expect_invalid(set, "s.json", "-100", "");
    expect_message(set, "s.json", "1", "", "must be at least 1.5");
    expect_message(set, "s.json", "11", "", "must be at most 10");
    expect_valid(set, "s.json", "\"0\""); /* bounds apply to numbers only */
    schema_set_free(set);
}
END_TEST

START_TEST(test_date_time_function)
{
    static const char *const valid[] = {
        "2026-03-01T14:30:00Z",      "2026-03-01t14:30:00z",
        "2026-03-01T14:30:00.5Z",    "2026-03-01T14:30:00.123456789Z",
        "2026-03-01T14:30:00+05:30", "2026-03-01T14:30:00-08:00",
        "2026-03-01T00:00:00+00:00", "2026-12-31T23:59:59Z",
        "2024-02-29T00:00:00Z",      /* leap year */
        "2000-02-29T12:00:00Z",      /* divisible by 400 */
        "2016-12-31T23:59:60Z",      /* leap second */
        "2016-12-31T18:59:60-05:00", /* the same leap second, 23:59:60 UTC */
        "2017-01-01T00:59:60+01:00",
    };
    static const char *const invalid[] = {
        "",
        "2026-03-01",
        "2026-03-01T14:30:00",  /* no time zone */
        "2026-03-01 14:30:00Z", /* space instead of T */
        "2026-03-01T14:30Z",    /* no seconds */
        "2026-3-01T14:30:00Z",
        "2026-03-1T14:30:00Z",
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
        "2026-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-03-00T00:00:00Z",
        "2026-03-32T00:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T23:60:00Z",
        "2026-03-01T23:59:61Z",
        "2026-03-01T12:00:60Z",      /* a leap second only at 23:59:60 UTC */
        "2016-12-31T23:59:60+01:00", /* 22:59:60 UTC */
        "2016-12-31T23:59:60-00:01",
        "2026-03-01T14:30:00.Z",
        "2026-03-01T14:30:00,5Z",
        "2026-03-01T14:30:00+0530",
        "2026-03-01T14:30:00+05",
        "2026-03-01T14:30:00+24:00",
        "2026-03-01T14:30:00+05:60",
        "2026-03-01T14:30:00Z ",
        " 2026-03-01T14:30:00Z",
        "2026-03-01T14:30:00ZZ",
        "2026-03-01T14:30:00UTC",
        "20260301T143000Z",
        "2026-03-01X14:30:00Z",
        "abcd-ef-ghTij:kl:mnZ",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(valid); i++)
        ck_assert_msg(schema_is_date_time(valid[i]) == 1, "'%s': expected valid (1), got %d",
                      valid[i], schema_is_date_time(valid[i]));
    for (size_t i = 0; i < SN_ARRAY_LEN(invalid); i++)
        ck_assert_msg(schema_is_date_time(invalid[i]) == 0, "'%s': expected invalid (0), got %d",
                      invalid[i], schema_is_date_time(invalid[i]));
}
END_TEST

START_TEST(test_format_keyword)
{
    struct schema_set *set =
        one_schema("\"properties\": {\"t\": {\"format\": \"date-time\"}, \"u\": {\"format\": "
                   "\"date-time\"}}");
    expect_valid(set, "s.json",
                 "{\"t\": \"2024-02-29T23:59:60Z\", \"u\": \"2026-03-01T14:30:00+05:30\"}");
    expect_invalid(set, "s.json",
                   "{\"t\": \"2023-02-29T10:00:00Z\", \"u\": \"2026-03-01 14:30:00Z\"}", "/t",
                   "/u");
    expect_invalid(set, "s.json", "{\"t\": \"2026-03-01T14:30:00\"}", "/t");
    expect_message(set, "s.json", "{\"t\": \"yesterday\"}", "/t", "RFC 3339 date-time");
    expect_valid(set, "s.json", "{\"t\": 20260301}"); /* format applies to strings only */
    schema_set_free(set);
}
END_TEST

START_TEST(test_ref_within_and_across_files)
{
    const char *a = "{\"$id\": \"a.json\", \"type\": \"object\","
                    " \"$defs\": {\"pos\": {\"type\": \"integer\", \"minimum\": 1},"
                    "            \"x/y\": {\"const\": \"slash\"}},"
                    " \"properties\": {\"n\": {\"$ref\": \"#/$defs/pos\"},"
                    "                 \"s\": {\"$ref\": \"#/$defs/x~1y\"},"
                    "                 \"name\": {\"$ref\": \"b.json#/$defs/short\"},"
                    "                 \"whole\": {\"$ref\": \"b.json\"},"
                    "                 \"list\": {\"items\": {\"$ref\": \"#/$defs/pos\"}}}}";
    /* b's own "#/..." refs resolve inside b, not in the document that referred to it */
    const char *b = "{\"$id\": \"b.json\", \"type\": \"object\", \"required\": [\"z\"],"
                    " \"$defs\": {\"short\": {\"type\": \"string\", \"maxLength\": 3}},"
                    " \"properties\": {\"z\": {\"$ref\": \"#/$defs/short\"}}}";
    struct schema_set *set = load_ok(make_dir("a.json", a, "b.json", b, NULL));
    expect_valid(set, "a.json",
                 "{\"n\": 1, \"s\": \"slash\", \"name\": \"abc\", \"whole\": {\"z\": \"z\"}, "
                 "\"list\": [1, 2]}");
    expect_invalid(set, "a.json",
                   "{\"n\": 0, \"s\": \"x\", \"name\": \"abcd\", \"whole\": {\"z\": \"toolong\"}, "
                   "\"list\": [1, 0, \"2\"]}",
                   "/n", "/s", "/name", "/whole/z", "/list/1", "/list/2");
    expect_invalid(set, "a.json", "{\"whole\": {}}", "/whole/z");
    expect_invalid(set, "a.json", "{\"whole\": []}", "/whole");
    expect_valid(set, "b.json", "{\"z\": \"abc\"}");
    expect_invalid(set, "b.json", "{\"z\": 1}", "/z");
    schema_set_free(set);
}
END_TEST

/* A $ref next to other keywords: both apply (2020-12). */
START_TEST(test_ref_with_siblings)
{
    struct schema_set *set = one_schema("\"$defs\": {\"s\": {\"type\": \"string\"}},"
                                        "\"$ref\": \"#/$defs/s\", \"maxLength\": 2");
    expect_valid(set, "s.json", "\"ab\"");
    expect_invalid(set, "s.json", "1", "");
    expect_invalid(set, "s.json", "\"abc\"", "");
    schema_set_free(set);
}
END_TEST

START_TEST(test_boolean_schemas)
{
    struct schema_set *set =
        one_schema("\"properties\": {\"yes\": true, \"no\": false}, \"required\": [\"yes\"]");
    expect_valid(set, "s.json", "{\"yes\": [1, {}]}");
    expect_invalid(set, "s.json", "{\"yes\": 1, \"no\": 1}", "/no");
    expect_message(set, "s.json", "{\"yes\": 1, \"no\": null}", "/no", "is not allowed");
    schema_set_free(set);
}
END_TEST

/* ---- reporting ---- */

static const char *nested_schema =
    "\"type\": \"object\", \"required\": [\"id\", \"items\", \"meta\"],"
    "\"additionalProperties\": false,"
    "\"properties\": {\"id\": {\"type\": \"string\", \"pattern\": \"^[a-z]+$\", \"maxLength\": 3},"
    "  \"items\": {\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": \"object\","
    "     \"required\": [\"v\"], \"properties\": {\"v\": {\"enum\": [1, 2]}}}},"
    "  \"meta\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}}";

START_TEST(test_every_violation_reported)
{
    struct schema_set *set = one_schema(nested_schema);
    /* pattern and maxLength both fail on /id; every item and key is visited */
    expect_invalid(set, "s.json",
                   "{\"id\": \"ABCD\", \"items\": [{\"v\": 3}, {}, {\"v\": 2}, 5],"
                   " \"meta\": {\"a\": \"ok\", \"b\": 1, \"c\": false}, \"x\": 1, \"y\": 2}",
                   "/id", "/id", "/items/0/v", "/items/1/v", "/items/3", "/meta/b", "/meta/c", "/x",
                   "/y");
    expect_invalid(set, "s.json", "{\"items\": []}", "/id", "/meta", "/items");
    schema_set_free(set);
}
END_TEST

START_TEST(test_prefix)
{
    struct schema_set *set = one_schema(nested_schema);
    expect_pointers(set, "s.json",
                    "{\"id\": \"ab\", \"items\": [{\"v\": 3}], \"meta\": {\"k\": 1}, \"x\": 1}",
                    "/data", PTRS("/data/items/0/v", "/data/meta/k", "/data/x"));
    expect_pointers(set, "s.json", "{\"items\": [{}]}", "/data",
                    PTRS("/data/id", "/data/meta", "/data/items/0/v"));
    /* a violation of the whole instance is at the prefix itself */
    expect_pointers(set, "s.json", "[]", "/data", PTRS("/data"));
    expect_pointers(set, "s.json", "{\"id\": \"ab\", \"items\": [{\"v\": 1}], \"meta\": {}}",
                    "/data", NONE);
    schema_set_free(set);
}
END_TEST

START_TEST(test_pointer_escaping)
{
    struct schema_set *set =
        one_schema("\"required\": [\"a/b\", \"c~d\", \"~1\"],"
                   "\"properties\": {\"p/q\": {\"type\": \"string\"}, \"r~s\": {\"items\": "
                   "{\"type\": \"string\"}}}, \"additionalProperties\": false");
    expect_invalid(set, "s.json", "{}", "/a~1b", "/c~0d", "/~01");
    expect_invalid(set, "s.json",
                   "{\"a/b\": 1, \"c~d\": 1, \"~1\": 1, \"p/q\": 1, \"r~s\": [\"x\", 2],"
                   " \"/\": 1, \"~\": 1, \"x/~/y\": 1}",
                   "/a~1b", "/c~0d", "/~01", "/p~1q", "/r~0s/1", "/~1", "/~0", "/x~1~0~1y");
    expect_pointers(set, "s.json", "{\"a/b\": 1, \"c~d\": 1, \"~1\": 1, \"p/q\": 1}", "/data",
                    PTRS("/data/a~1b", "/data/c~0d", "/data/~01", "/data/p~1q"));
    schema_set_free(set);
}
END_TEST

START_TEST(test_appends_to_errors)
{
    struct schema_set *set = one_schema("\"type\": \"string\"");
    json_t *errors = json_pack("[{s:s,s:s}]", "pointer", "/earlier", "message", "kept");
    json_t *instance = json_integer(1);
    size_t n = schema_validate(set, "s.json", instance, "", errors);
    ck_assert_msg(n == 1, "expected 1 violation, got %zu", n);
    ck_assert_int_eq(json_array_size(errors), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "pointer")),
                     "/earlier");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 1), "pointer")), "");
    n = schema_validate(set, "s.json", instance, "", errors);
    ck_assert_msg(n == 1, "a second call returned %zu, expected 1 (its own count)", n);
    ck_assert_int_eq(json_array_size(errors), 3);
    json_decref(instance);
    json_decref(errors);
    schema_set_free(set);
}
END_TEST

START_TEST(test_unknown_schema_id)
{
    struct schema_set *set = one_schema("\"type\": \"string\"");
    expect_pointers(set, "nope.json", "\"x\"", "/data", PTRS("/data"));
    expect_message(set, "nope.json", "\"x\"", "", "no schema nope.json is loaded");
    schema_set_free(set);
}
END_TEST

START_TEST(test_set_has)
{
    struct schema_set *set =
        load_ok(make_dir("a.json", "{\"$id\": \"a.json\"}", "b.json", "{\"type\": \"string\"}",
                         "notes.txt", "not json", "c.json.bak", "{", ".hidden.json", "{", NULL));
    ck_assert_int_eq(schema_set_has(set, "a.json"), 1);
    ck_assert_int_eq(schema_set_has(set, "b.json"), 1); /* no $id: the file name */
    ck_assert_int_eq(schema_set_has(set, "notes.txt"), 0);
    ck_assert_int_eq(schema_set_has(set, "c.json.bak"), 0);
    ck_assert_int_eq(schema_set_has(set, ".hidden.json"), 0);
    ck_assert_int_eq(schema_set_has(set, "a"), 0);
    ck_assert_int_eq(schema_set_has(set, "a.jso"), 0);
    ck_assert_int_eq(schema_set_has(set, "a.json2"), 0);
    ck_assert_int_eq(schema_set_has(set, ""), 0);
    schema_set_free(set);
}
END_TEST

/* ---- load errors ---- */

START_TEST(test_load_unsupported_keyword)
{
    char err[1024];
    load_fails(make_dir("ok.json", "{\"type\": \"string\"}", "bad.json",
                        "{\"$id\": \"bad.json\", \"properties\": {\"x\": {\"oneOf\": "
                        "[{\"type\": \"string\"}]}}}",
                        NULL),
               err, sizeof(err));
    ck_assert_contains(err, "bad.json#/properties/x/oneOf");
    ck_assert_contains(err, "unsupported keyword 'oneOf'");

    load_fails(make_dir("top.json", "{\"if\": true}", NULL), err, sizeof(err));
    ck_assert_contains(err, "top.json#/if");

    /* inside $defs, items and additionalProperties too; keys are escaped */
    load_fails(make_dir("d.json", "{\"$defs\": {\"a/b\": {\"items\": {\"anyOf\": []}}}}", NULL),
               err, sizeof(err));
    ck_assert_contains(err, "d.json#/$defs/a~1b/items/anyOf");
    load_fails(make_dir("e.json", "{\"additionalProperties\": {\"not\": {}}}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "e.json#/additionalProperties/not");
    /* a misspelt keyword is not silently ignored */
    load_fails(make_dir("f.json", "{\"properties\": {\"n\": {\"maxlength\": 3}}}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "f.json#/properties/n/maxlength");
}
END_TEST

START_TEST(test_load_bad_keyword_values)
{
    static const struct {
        const char *schema, *where;
    } cases[] = {
        {"{\"type\": \"float\"}", "t.json#/type"},
        {"{\"type\": []}", "t.json#/type"},
        {"{\"required\": \"a\"}", "t.json#/required"},
        {"{\"enum\": []}", "t.json#/enum"},
        {"{\"minLength\": -1}", "t.json#/minLength"},
        {"{\"maxItems\": 1.5}", "t.json#/maxItems"},
        {"{\"minimum\": \"1\"}", "t.json#/minimum"},
        {"{\"properties\": {\"a\": 1}}", "t.json#/properties/a"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        char err[1024];
        load_fails(make_dir("t.json", cases[i].schema, NULL), err, sizeof(err));
        ck_assert_msg(strstr(err, cases[i].where) != NULL, "%s: expected '%s' in: %s",
                      cases[i].schema, cases[i].where, err);
    }
}
END_TEST

START_TEST(test_load_unsupported_format)
{
    char err[1024];
    load_fails(make_dir("f.json", "{\"properties\": {\"mail\": {\"format\": \"email\"}}}", NULL),
               err, sizeof(err));
    ck_assert_contains(err, "f.json#/properties/mail/format");
    ck_assert_contains(err, "unsupported format email");
}
END_TEST

START_TEST(test_load_bad_pattern)
{
    char err[1024];
    load_fails(make_dir("p.json", "{\"properties\": {\"x\": {\"pattern\": \"a(b\"}}}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "p.json#/properties/x/pattern");
    ck_assert_contains(err, "bad pattern");
}
END_TEST

START_TEST(test_load_unresolvable_ref)
{
    char err[1024];
    load_fails(
        make_dir("r.json", "{\"properties\": {\"x\": {\"$ref\": \"other.json#/$defs/a\"}}}", NULL),
        err, sizeof(err));
    ck_assert_contains(err, "r.json#/properties/x/$ref");
    ck_assert_contains(err, "other.json#/$defs/a");
    ck_assert_contains(err, "does not resolve");

    /* the file exists but the pointer does not */
    load_fails(make_dir("r.json", "{\"items\": {\"$ref\": \"o.json#/$defs/missing\"}}", "o.json",
                        "{\"$defs\": {\"there\": {}}}", NULL),
               err, sizeof(err));
    ck_assert_contains(err, "r.json#/items/$ref");
    ck_assert_contains(err, "o.json#/$defs/missing");

    /* within the file */
    load_fails(make_dir("r.json", "{\"$defs\": {\"a\": {}}, \"$ref\": \"#/$defs/b\"}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "r.json#/$ref");
    ck_assert_contains(err, "#/$defs/b");
}
END_TEST

START_TEST(test_load_id_must_be_file_name)
{
    char err[1024];
    const char *dir = make_dir("real.json", "{\"$id\": \"other.json\"}", NULL);
    load_fails(dir, err, sizeof(err));
    ck_assert_contains(err, "real.json");
    ck_assert_contains(err, "\"other.json\"");
    ck_assert_contains(err, "must equal the file name");
}
END_TEST

START_TEST(test_load_not_json)
{
    const char *text = "{\n  \"type\": \"object\",\n  oops\n}\n";
    char err[1024], want[512];
    const char *dir = make_dir("broken.json", text, NULL);
    load_fails(dir, err, sizeof(err));
    /* line and column as the JSON parser reports them */
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(jerr.line, 3);
    snprintf(want, sizeof(want), "%s/broken.json:%d:%d: ", dir, jerr.line, jerr.column);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "expected the message to start with '%s', got: %s", want, err);

    /* a duplicate key is refused too */
    dir = make_dir("dup.json", "{\"type\": \"string\",\n \"type\": \"integer\"}", NULL);
    load_fails(dir, err, sizeof(err));
    snprintf(want, sizeof(want), "%s/dup.json:2:", dir);
    ck_assert_contains(err, want);

    /* a schema that is JSON but not an object or a boolean */
    load_fails(make_dir("n.json", "42", NULL), err, sizeof(err));
    ck_assert_contains(err, "n.json");
}
END_TEST

START_TEST(test_load_missing_dir)
{
    char err[1024];
    char path[256];
    snprintf(path, sizeof(path), "%s/no-such-dir", run_dir);
    load_fails(path, err, sizeof(err));
    ck_assert_contains(err, path);
}
END_TEST

/* ---- vocabularies ---- */

static const char *vocab_json =
    "{\"vocabulary\": \"test\", \"sets\": {"
    " \"color\": {\"label\": \"Color\", \"terms\": ["
    "   {\"code\": \"red\", \"label\": \"Red\", \"definition\": \"d\"},"
    "   {\"code\": \"green\", \"label\": \"Green\", \"definition\": \"d\"},"
    "   {\"code\": \"dark/blue\", \"label\": \"Dark blue\", \"definition\": \"d\"}]},"
    " \"size\": {\"label\": \"Size\", \"terms\": ["
    "   {\"code\": \"s\", \"label\": \"S\", \"definition\": \"d\"}]}}}";

static const char *uses_vocab_json =
    "{\"$id\": \"thing.json\", \"type\": \"object\", \"properties\": {"
    " \"color\": {\"$ref\": \"vocab.json#/$defs/color\"},"
    " \"sizes\": {\"items\": {\"$ref\": \"vocab.json#/$defs/size\"}}}}";

START_TEST(test_vocabulary_enums)
{
    struct schema_set *set =
        load_ok(make_dir("vocab.json", vocab_json, "thing.json", uses_vocab_json, NULL));
    ck_assert_int_eq(schema_set_has(set, "vocab.json"), 1);
    expect_valid(set, "thing.json", "{\"color\": \"green\", \"sizes\": [\"s\", \"s\"]}");
    expect_valid(set, "thing.json", "{\"color\": \"dark/blue\"}");
    expect_invalid(set, "thing.json", "{\"color\": \"blue\", \"sizes\": [\"s\", \"m\", 1]}",
                   "/color", "/sizes/1", "/sizes/2");
    expect_message(set, "thing.json", "{\"color\": \"Red\"}", "/color",
                   "must be one of: \"red\", \"green\", \"dark/blue\"");
    expect_message(set, "thing.json", "{\"color\": 1}", "/color", "must be of type string");
    schema_set_free(set);
}
END_TEST

static char *codes_text(const json_t *codes)
{
    return codes ? json_dumps(codes, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("NULL");
}

START_TEST(test_vocabulary_codes)
{
    struct schema_set *set =
        load_ok(make_dir("vocab.json", vocab_json, "thing.json", uses_vocab_json, NULL));
    char *got = codes_text(schema_vocabulary_codes(set, "color"));
    ck_assert_str_eq(got, "[\"red\",\"green\",\"dark/blue\"]");
    free(got);
    got = codes_text(schema_vocabulary_codes(set, "size"));
    ck_assert_str_eq(got, "[\"s\"]");
    free(got);
    ck_assert_ptr_null(schema_vocabulary_codes(set, "shape"));
    ck_assert_ptr_null(schema_vocabulary_codes(set, ""));
    schema_set_free(set);
}
END_TEST

START_TEST(test_vocabulary_duplicate_code)
{
    char err[1024];
    load_fails(make_dir("v.json",
                        "{\"sets\": {\"color\": {\"terms\": ["
                        " {\"code\": \"red\", \"label\": \"Red\", \"definition\": \"d\"},"
                        " {\"code\": \"blue\", \"label\": \"Blue\", \"definition\": \"d\"},"
                        " {\"code\": \"red\", \"label\": \"Red again\", \"definition\": \"d\"}]}}}",
                        NULL),
               err, sizeof(err));
    ck_assert_contains(err, "v.json");
    ck_assert_contains(err, "code 'red' appears twice in set 'color'");
}
END_TEST

START_TEST(test_vocabulary_missing_fields)
{
    static const struct {
        const char *term, *what;
    } cases[] = {
        {"{\"code\": \"b\", \"label\": \"B\"}",
         "/sets/color/terms/1 needs code, label and definition"},
        {"{\"code\": \"b\", \"definition\": \"d\"}", "/sets/color/terms/1"},
        {"{\"label\": \"B\", \"definition\": \"d\"}", "/sets/color/terms/1"},
        {"{\"code\": \"\", \"label\": \"B\", \"definition\": \"d\"}", "/sets/color/terms/1"},
        {"{\"code\": 7, \"label\": \"B\", \"definition\": \"d\"}", "/sets/color/terms/1"},
        {"\"b\"", "/sets/color/terms/1"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        char text[1024], err[1024];
        snprintf(text, sizeof(text),
                 "{\"sets\": {\"color\": {\"terms\": [{\"code\": \"a\", \"label\": \"A\", "
                 "\"definition\": \"d\"}, %s]}}}",
                 cases[i].term);
        load_fails(make_dir("v.json", text, NULL), err, sizeof(err));
        ck_assert_msg(strstr(err, "v.json") && strstr(err, cases[i].what),
                      "term %s: expected 'v.json' and '%s' in: %s", cases[i].term, cases[i].what,
                      err);
    }
}
END_TEST

/* A set without terms is refused, and the refusal frees what it built (run
 * with CK_FORK=no under LeakSanitizer to see a leak). */
START_TEST(test_vocabulary_empty_set)
{
    char err[1024];
    load_fails(make_dir("v.json", "{\"sets\": {\"color\": {\"terms\": []}}}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "v.json: set 'color' needs a non-empty \"terms\" array");
    load_fails(make_dir("v.json", "{\"sets\": {\"color\": {\"label\": \"no terms\"}}}", NULL), err,
               sizeof(err));
    ck_assert_contains(err, "set 'color' needs a non-empty \"terms\" array");
}
END_TEST

/* ---- the registry of event types ---- */

#define OBJ_SCHEMA "{\"type\": \"object\"}"

START_TEST(test_event_types_load)
{
    const char *dir =
        make_dir("a.json", OBJ_SCHEMA, "b.json", OBJ_SCHEMA, "event-types.json",
                 "{\"$comment\": \"c\", \"types\": {\"t.b\": {\"schema\": \"b.json\", \"mapping\": "
                 "\"maps/b.map\", \"description\": \"d\"}, \"t.a\": {\"schema\": \"a.json\"}}}",
                 NULL);
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/maps", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/maps/b.map", dir);
    FILE *f = fopen(sub, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"fields\": [{\"to\": \"/x\", \"from\": \"/y\"}]}", f);
    fclose(f);
    struct schema_set *set = load_ok(dir);
    /* the registry is not a schema */
    ck_assert_int_eq(schema_set_has(set, "event-types.json"), 0);
    size_t n;
    const struct schema_event_type *types = schema_event_types(set, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(types[0].type, "t.b"); /* the file's order */
    ck_assert_str_eq(types[1].type, "t.a");
    const struct schema_event_type *b = schema_event_type(set, "t.b");
    ck_assert_ptr_eq(b, &types[0]);
    ck_assert_str_eq(b->schema, "b.json");
    ck_assert_str_eq(b->mapping_file, "maps/b.map");
    ck_assert(json_is_array(json_object_get(b->mapping, "fields")));
    const struct schema_event_type *a = schema_event_type(set, "t.a");
    ck_assert_str_eq(a->schema, "a.json");
    ck_assert_ptr_null(a->mapping_file);
    ck_assert_ptr_null(a->mapping);
    ck_assert_ptr_null(schema_event_type(set, "t.c"));
    ck_assert_ptr_null(schema_event_type(set, "t.a "));
    ck_assert_ptr_null(schema_event_type(set, ""));
    schema_set_free(set);

    /* without a registry: no type */
    set = load_ok(make_dir("a.json", OBJ_SCHEMA, NULL));
    ck_assert_ptr_null(schema_event_type(set, "t.a"));
    ck_assert_ptr_null(schema_event_types(set, &n));
    ck_assert_uint_eq(n, 0);
    schema_set_free(set);
}
END_TEST

START_TEST(test_event_types_errors)
{
    static const struct {
        const char *registry, *want;
    } cases[] = {
        {"[]", "event-types.json: must be an object with \"types\""},
        {"{}", "event-types.json#/types: must be an object naming at least one event type"},
        {"{\"types\": {}}", "event-types.json#/types: must be an object naming at least one"},
        {"{\"types\": [\"t\"]}", "event-types.json#/types: must be an object naming"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\"}}, \"extra\": 1}",
         "event-types.json#/extra: unknown member"},
        {"{\"types\": {\"t\": \"a.json\"}}", "event-types.json#/types/t: must be an object"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"maping\": \"m.map\"}}}",
         "event-types.json#/types/t/maping: unknown member"},
        {"{\"types\": {\"t\": {}}}", "event-types.json#/types/t/schema: must name a schema"},
        {"{\"types\": {\"t\": {\"schema\": \"nope.json\"}}}", "(nope.json is not one)"},
        {"{\"types\": {\"t\": {\"schema\": \"event-types.json\"}}}",
         "(event-types.json is not one)"},
        {"{\"types\": {\"a/b\": {\"schema\": 1}}}", "event-types.json#/types/a~1b/schema"},
        {"{\"types\": {\"\": {\"schema\": \"a.json\"}}}", "an event type must not be empty"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"/etc/hosts\"}}}",
         "event-types.json#/types/t/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"../m.map\"}}}",
         "/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"x/../../m.map\"}}}",
         "/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"..\"}}}",
         "/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"\"}}}",
         "/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": 1}}}",
         "/mapping: must be the path of a file inside"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"missing.map\"}}}",
         "/missing.map (mapping of t): "},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": \"broken.map\"}}}",
         "/broken.map (mapping of t): 1:"},
        {"{\"types\": {\"t\": {\"schema\": \"a.json\"}},}", "/event-types.json:1:"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        char err[1024];
        const char *dir = make_dir("a.json", OBJ_SCHEMA, "broken.map", "{\"fields\": [", "ok.map",
                                   "{}", "event-types.json", cases[i].registry, NULL);
        load_fails(dir, err, sizeof(err));
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "registry %s\nexpected '%s' in: %s",
                      cases[i].registry, cases[i].want, err);
    }
    /* ".." is refused wherever it is (above, even where the path would end
     * inside); a name that merely starts with two dots is a name */
    const char *dir = make_dir("a.json", OBJ_SCHEMA, "..ok.map", "{}", "event-types.json",
                               "{\"types\": {\"t\": {\"schema\": \"a.json\", \"mapping\": "
                               "\"..ok.map\"}}}",
                               NULL);
    struct schema_set *set = load_ok(dir);
    ck_assert_ptr_nonnull(schema_event_type(set, "t")->mapping);
    schema_set_free(set);
}
END_TEST

/* ---- the repository's schemas/ ---- */

static struct schema_set *repo;

static void repo_setup(void)
{
    char err[1024] = "";
    repo = NULL;
    if (schema_set_load(schemas_dir, &repo, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", schemas_dir, err);
        repo = NULL;
    }
}

static void repo_teardown(void)
{
    schema_set_free(repo);
    repo = NULL;
}

#define REPO_SET()                                                                                 \
    ck_assert_msg(repo != NULL, "the schemas in %s did not load (see stderr)", schemas_dir)

/* The README's example event. */
static const char *example_event =
    "{\"specversion\": \"1.0\", \"type\": \"org.npcs.review.completed.v1\","
    " \"source\": \"urn:npcs:jurisdiction:US-TN\", \"id\": \"tn-cir-2026-0042-v1\","
    " \"time\": \"2026-03-02T15:04:05Z\", \"datacontenttype\": \"application/json\","
    " \"data\": %s}";
static const char *example_review = TEST_REVIEW_V1;

START_TEST(test_repo_loads)
{
    REPO_SET();
    static const char *const ids[] = {"cloudevent.v1.json", "review-completed.v1.json",
                                      "vocabulary.v1.json", "token-request.v1.json"};
    for (size_t i = 0; i < SN_ARRAY_LEN(ids); i++)
        ck_assert_msg(schema_set_has(repo, ids[i]) == 1, "%s is not loaded from %s", ids[i],
                      schemas_dir);
    ck_assert_int_eq(schema_set_has(repo, "README.md"), 0);
}
END_TEST

/* Each set's codes are the vocabulary file's terms, in order. */
START_TEST(test_repo_vocabulary_codes)
{
    REPO_SET();
    char path[4200];
    snprintf(path, sizeof(path), "%s/vocabulary.v1.json", schemas_dir);
    json_error_t jerr;
    json_t *vocab = json_load_file(path, 0, &jerr);
    ck_assert_msg(vocab != NULL, "%s: %s", path, jerr.text);
    json_t *sets = json_object_get(vocab, "sets");
    ck_assert_int_ge(json_object_size(sets), 5);
    const char *name;
    json_t *s;
    json_object_foreach(sets, name, s)
    {
        json_t *want = json_array();
        size_t i;
        json_t *term;
        json_array_foreach(json_object_get(s, "terms"), i, term)
            json_array_append(want, json_object_get(term, "code"));
        char *w = codes_text(want), *g = codes_text(schema_vocabulary_codes(repo, name));
        ck_assert_msg(strcmp(w, g) == 0, "set %s: expected %s, got %s", name, w, g);
        free(w);
        free(g);
        json_decref(want);
    }
    json_decref(vocab);

    static const struct {
        const char *set, *code;
        size_t count;
    } known[] = {{"theme", "teamwork_coordination", 15},
                 {"subtheme", "joint_investigation", 17},
                 {"partner", "law_enforcement", 12},
                 {"cause", "suid", 13},
                 {"family_need", "economic_support", 12}};
    for (size_t i = 0; i < SN_ARRAY_LEN(known); i++) {
        const json_t *codes = schema_vocabulary_codes(repo, known[i].set);
        ck_assert_msg(codes != NULL, "no vocabulary set %s", known[i].set);
        ck_assert_msg(json_array_size(codes) == known[i].count,
                      "set %s: expected %zu codes, got %zu", known[i].set, known[i].count,
                      json_array_size(codes));
        int found = 0;
        size_t j;
        json_t *c;
        json_array_foreach(codes, j, c) found |= strcmp(json_string_value(c), known[i].code) == 0;
        ck_assert_msg(found, "set %s has no code %s", known[i].set, known[i].code);
    }
    ck_assert_ptr_null(schema_vocabulary_codes(repo, "incident_type"));
}
END_TEST

/* The repository ships the canonical version only. */
START_TEST(test_repo_event_types)
{
    REPO_SET();
    size_t n;
    const struct schema_event_type *types = schema_event_types(repo, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(types[0].type, "org.npcs.review.completed.v1");
    ck_assert_str_eq(types[0].schema, "review-completed.v1.json");
    ck_assert_ptr_null(types[0].mapping);
    ck_assert_int_eq(schema_set_has(repo, "event-types.json"), 0);
}
END_TEST

START_TEST(test_repo_example_valid)
{
    REPO_SET();
    char text[8192];
    snprintf(text, sizeof(text), example_event, example_review);
    expect_valid(repo, "cloudevent.v1.json", text);
    expect_pointers(repo, "review-completed.v1.json", example_review, "/data", NONE);
}
END_TEST

START_TEST(test_repo_review_violations)
{
    REPO_SET();
    const char *bad =
        "{\"review_id\": \"-bad id\", \"jurisdiction\": \"us-tn\","
        " \"finalized_at\": \"2026-03-02 15:00:00Z\","
        " \"incident\": {\"type\": \"fatal\", \"cause\": \"unknown_cause\", \"month\": \"2026-13\","
        "   \"child_age_band\": \"0-2\", \"prior_agency_involvement\": \"yes\", \"name\": \"x\"},"
        " \"improvement_opportunities\": ["
        "   {\"theme\": \"teamwork\", \"seips_domain\": \"organization\", \"priority\": "
        "\"urgent\"},"
        "   {\"theme\": \"workload\", \"subtheme\": \"nope\", \"partner\": \"police\","
        "    \"seips_domain\": \"people\"}],"
        " \"family_needs\": [\"housing\", \"money\"], \"extra\": 1}";
    expect_pointers(repo, "review-completed.v1.json", bad, "/data",
                    PTRS("/data/review_id", "/data/jurisdiction", "/data/finalized_at",
                         "/data/incident/type", "/data/incident/cause", "/data/incident/month",
                         "/data/incident/child_age_band", "/data/incident/prior_agency_involvement",
                         "/data/incident/name", "/data/improvement_opportunities/0/theme",
                         "/data/improvement_opportunities/0/priority",
                         "/data/improvement_opportunities/1/subtheme",
                         "/data/improvement_opportunities/1/partner",
                         "/data/improvement_opportunities/1/seips_domain",
                         "/data/improvement_opportunities/1/priority", "/data/family_needs/1",
                         "/data/extra"));
    expect_pointers(repo, "review-completed.v1.json", "{\"improvement_opportunities\": []}", "",
                    PTRS("/review_id", "/jurisdiction", "/finalized_at", "/incident",
                         "/family_needs", "/improvement_opportunities"));
    /* a vocabulary code is checked against the vocabulary file */
    json_t *errors = json_array();
    json_t *review = parse(example_review);
    json_object_set_new(json_array_get(json_object_get(review, "improvement_opportunities"), 0),
                        "theme", json_string("teamwork"));
    ck_assert_int_eq(schema_validate(repo, "review-completed.v1.json", review, "/data", errors), 1);
    const char *msg = json_string_value(json_object_get(json_array_get(errors, 0), "message"));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "pointer")),
                     "/data/improvement_opportunities/0/theme");
    ck_assert_contains(msg, "\"teamwork_coordination\"");
    ck_assert_contains(msg, "\"economic_support\"");
    json_decref(review);
    json_decref(errors);
}
END_TEST

START_TEST(test_repo_envelope_violations)
{
    REPO_SET();
    const char *bad = "{\"specversion\": \"0.3\", \"type\": \"\","
                      " \"source\": \"urn:npcs:jurisdiction:us-tn\", \"id\": \"\","
                      " \"time\": \"2026-03-02T15:04:05\", \"datacontenttype\": \"text/plain\","
                      " \"data\": [], \"ext\": {\"a\": 1}, \"ok_ext\": 5}";
    expect_invalid(repo, "cloudevent.v1.json", bad, "/specversion", "/type", "/source", "/id",
                   "/time", "/datacontenttype", "/data", "/ext");
    expect_invalid(repo, "cloudevent.v1.json", "{}", "/specversion", "/id", "/source", "/type",
                   "/time", "/data");
    expect_valid(repo, "token-request.v1.json",
                 "{\"role\": \"emitter\", \"jurisdiction\": \"US-CA-LAC\"}");
    expect_invalid(repo, "token-request.v1.json",
                   "{\"role\": \"root\", \"jurisdiction\": \"TN\", \"x\": 1}", "/role",
                   "/jurisdiction", "/x");
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("keywords");
    tcase_add_test(tc, test_type);
    tcase_add_test(tc, test_required_and_properties);
    tcase_add_test(tc, test_additional_properties);
    tcase_add_test(tc, test_items);
    tcase_add_test(tc, test_enum);
    tcase_add_test(tc, test_const);
    tcase_add_test(tc, test_pattern);
    tcase_add_test(tc, test_string_length_in_code_points);
    tcase_add_test(tc, test_items_count);
    tcase_add_test(tc, test_minimum_maximum);
    tcase_add_test(tc, test_date_time_function);
    tcase_add_test(tc, test_format_keyword);
    tcase_add_test(tc, test_ref_within_and_across_files);
    tcase_add_test(tc, test_ref_with_siblings);
    tcase_add_test(tc, test_boolean_schemas);
    suite_add_tcase(s, tc);

    tc = tcase_create("reporting");
    tcase_add_test(tc, test_every_violation_reported);
    tcase_add_test(tc, test_prefix);
    tcase_add_test(tc, test_pointer_escaping);
    tcase_add_test(tc, test_appends_to_errors);
    tcase_add_test(tc, test_unknown_schema_id);
    tcase_add_test(tc, test_set_has);
    suite_add_tcase(s, tc);

    tc = tcase_create("load_errors");
    tcase_add_test(tc, test_load_unsupported_keyword);
    tcase_add_test(tc, test_load_bad_keyword_values);
    tcase_add_test(tc, test_load_unsupported_format);
    tcase_add_test(tc, test_load_bad_pattern);
    tcase_add_test(tc, test_load_unresolvable_ref);
    tcase_add_test(tc, test_load_id_must_be_file_name);
    tcase_add_test(tc, test_load_not_json);
    tcase_add_test(tc, test_load_missing_dir);
    suite_add_tcase(s, tc);

    tc = tcase_create("vocabulary");
    tcase_add_test(tc, test_vocabulary_enums);
    tcase_add_test(tc, test_vocabulary_codes);
    tcase_add_test(tc, test_vocabulary_duplicate_code);
    tcase_add_test(tc, test_vocabulary_missing_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("event_types");
    tcase_add_test(tc, test_event_types_load);
    tcase_add_test(tc, test_event_types_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("repo_schemas");
    tcase_add_checked_fixture(tc, repo_setup, repo_teardown);
    tcase_add_test(tc, test_repo_loads);
    tcase_add_test(tc, test_repo_event_types);
    tcase_add_test(tc, test_repo_vocabulary_codes);
    tcase_add_test(tc, test_repo_example_valid);
    tcase_add_test(tc, test_repo_review_violations);
    tcase_add_test(tc, test_repo_envelope_violations);
    suite_add_tcase(s, tc);

    /* regressions: bugs this suite found, now fixed */
    tc = tcase_create("regressions");
    tcase_add_test(tc, test_vocabulary_empty_set);
    suite_add_tcase(s, tc);
    return s;
}

/* SN_SCHEMAS_DIR, else schemas/ in the working directory (tests run from the
 * repository root), else schemas/ next to a parent directory of the binary. */
int main(void)
{
    test_find_schemas_dir(schemas_dir, sizeof(schemas_dir));
    snprintf(run_dir, sizeof(run_dir), "/tmp/sn-schema-test-XXXXXX");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", run_dir);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
