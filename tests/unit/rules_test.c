/* rules: matchers (each operator, anchoring, missing labels), group keys and
 * objects, templates, levels, and loading: the example rules of deploy/rules,
 * and each kind of error with its file, rule and JSON pointer, all or
 * nothing. Rule files are written for each test under run_dir, which main()
 * removes. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "schema.h"
#include "test_main.h"
#include "test_schemas.h"
#include "test_util.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

static char run_dir[64];
static char dir_path[128];
static char repo_dir[4096]; /* holds schemas/ and deploy/rules/ */
static struct schema_set *schemas;

/* ---- files ---- */

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_msg(fputs(content, f) >= 0, "cannot write %s", path);
    fclose(f);
}

/* A fresh directory holding the given files: pairs of (name, content) ended
 * by NULL. Returns its path (valid until the next call). */
static const char *make_dir(const char *name, ...)
{
    snprintf(dir_path, sizeof(dir_path), "%s/d-XXXXXX", run_dir);
    ck_assert_msg(mkdtemp(dir_path) != NULL, "cannot create a directory in %s", run_dir);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *))
        write_file(dir_path, n, va_arg(ap, const char *));
    va_end(ap);
    return dir_path;
}

static char *path_in(const char *dir, const char *name)
{
    char *p;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

/* ---- rules as JSON ---- */

static const char *const base_rule =
    "{\"description\": \"a test rule\","
    " \"match\": [\"kind=improvement_opportunity\"],"
    " \"group_by\": [\"theme\"],"
    " \"window\": \"180d\","
    " \"levels\": [{\"severity\": \"advisory\", \"min_reviews\": 5, \"min_jurisdictions\": 3},"
    "             {\"severity\": \"warning\", \"min_reviews\": 10, \"min_jurisdictions\": 5}],"
    " \"repeat_interval\": \"7d\","
    " \"resolve_after\": \"30d\","
    " \"topic\": \"notices.theme.{theme}\","
    " \"headline\": \"{theme}: {reviews} reviews from {jurisdictions} jurisdictions\","
    " \"summary\": \"In the last {window} ({severity}).\"}";

static json_t *parse(const char *text)
{
    return test_json_parse(text, 0);
}

/* A valid rule with this id (NULL: none), changed by patch: an object whose
 * members replace the rule's, null removing one. A new reference. */
static json_t *rule_json(const char *id, const char *patch)
{
    json_t *r = parse(base_rule);
    if (id) json_object_set_new(r, "id", json_string(id));
    if (patch) {
        json_t *p = parse(patch);
        const char *key;
        json_t *value;
        json_object_foreach(p, key, value)
        {
            if (json_is_null(value))
                json_object_del(r, key);
            else
                json_object_set(r, key, value);
        }
        json_decref(p);
    }
    return r;
}

/* {"rules": [r, ...]} from rules (stolen references, NULL-terminated); the
 * caller frees. */
static char *rules_text(json_t *first, ...)
{
    json_t *rules = json_array();
    va_list ap;
    va_start(ap, first);
    for (json_t *r = first; r; r = va_arg(ap, json_t *))
        json_array_append_new(rules, r);
    va_end(ap);
    json_t *root = json_pack("{s:o}", "rules", rules);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

/* ---- loading ---- */

static struct rule_set *load_ok(const char *path)
{
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    enum sn_err rc = rules_load(path, schemas, &rs, errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(rc == SN_OK, "loading %s: expected SN_OK, got %d with errors %s", path, rc, dump);
    ck_assert_msg(json_array_size(errors) == 0, "loading %s: expected no errors, got %s", path,
                  dump);
    ck_assert_ptr_nonnull(rs);
    free(dump);
    json_decref(errors);
    return rs;
}

/* Loads path, which must be refused; returns the errors (the caller decrefs). */
static json_t *load_fails(const char *path)
{
    json_t *errors = json_array();
    struct rule_set *sentinel = (struct rule_set *)&sentinel, *rs = sentinel;
    enum sn_err rc = rules_load(path, schemas, &rs, errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(rc == SN_ERR_CONF, "loading %s: expected SN_ERR_CONF (%d), got %d; errors %s",
                  path, SN_ERR_CONF, rc, dump);
    ck_assert_msg(rs == sentinel, "a refused load changed *out (the running rules must stay)");
    ck_assert_msg(json_array_size(errors) > 0, "a refused load reported no error");
    free(dump);
    return errors;
}

/* One file holding rules (as rules_text() takes them), loaded. */
static struct rule_set *load_rules_ok(json_t *first, ...)
{
    json_t *rules = json_array();
    va_list ap;
    va_start(ap, first);
    for (json_t *r = first; r; r = va_arg(ap, json_t *))
        json_array_append_new(rules, r);
    va_end(ap);
    json_t *root = json_pack("{s:o}", "rules", rules);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    const char *dir = make_dir("rules.json", text, NULL);
    free(text);
    char *file = path_in(dir, "rules.json");
    struct rule_set *rs = load_ok(file);
    free(file);
    return rs;
}

/* One rule whose match is the JSON array match, loaded. */
static struct rule_set *load_match(const char *match)
{
    char patch[2048];
    snprintf(patch, sizeof(patch), "{\"match\": %s}", match);
    return load_rules_ok(rule_json("m", patch), NULL);
}

/* Asserts that errors holds exactly one error with this file, rule (NULL:
 * JSON null), pointer and a message containing what. */
static void expect_error(const json_t *errors, const char *file, const char *rule,
                         const char *pointer, const char *what)
{
    size_t i, found = 0;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        const char *f = json_string_value(json_object_get(e, "file"));
        const json_t *r = json_object_get(e, "rule");
        const char *p = json_string_value(json_object_get(e, "pointer"));
        const char *m = json_string_value(json_object_get(e, "message"));
        ck_assert_msg(f && r && p && m && json_object_size(e) == 4,
                      "error %zu lacks file, rule, pointer or message", i);
        int rule_same =
            rule ? (json_is_string(r) && strcmp(json_string_value(r), rule) == 0) : json_is_null(r);
        if (strcmp(f, file) == 0 && rule_same && strcmp(p, pointer) == 0 && strstr(m, what))
            found++;
    }
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(found == 1,
                  "expected one error {file: %s, rule: %s, pointer: %s, message: ...%s...}, "
                  "found %zu in:\n%s",
                  file, rule ? rule : "null", pointer, what, found, dump);
    free(dump);
}

static void expect_error_count(const json_t *errors, size_t n)
{
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(json_array_size(errors) == n, "expected %zu errors, got %zu:\n%s", n,
                  json_array_size(errors), dump);
    free(dump);
}

/* Writes one rules file holding text, expects the load to fail; returns the
 * errors and the file's path in *file (the caller frees both). */
static json_t *file_fails(const char *text, char **file)
{
    const char *dir = make_dir("rules.json", text, NULL);
    *file = path_in(dir, "rules.json");
    return load_fails(*file);
}

/* ---- facts ---- */

/* A fact from (label, value) pairs ended by NULL; the strings are borrowed. */
static struct fact_labels fact(const char *label, ...)
{
    struct fact_labels f = {{NULL}};
    va_list ap;
    va_start(ap, label);
    for (const char *l = label; l; l = va_arg(ap, const char *)) {
        int i = fact_label_index(l);
        ck_assert_msg(i >= 0, "the test names an unknown label %s", l);
        f.values[i] = va_arg(ap, const char *);
    }
    va_end(ap);
    return f;
}

static const char *describe_fact(const struct fact_labels *f, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < FACT_LABEL_COUNT && o < len; i++)
        if (f->values[i])
            o += (size_t)snprintf(buf + o, len - o, "%s=%s ", fact_label_name(i), f->values[i]);
    if (!buf[0]) snprintf(buf, len, "(no labels)");
    return buf;
}

static void expect_match(const struct rule_set *rs, struct fact_labels f, int want)
{
    const struct rule *r = rule_set_get(rs, 0);
    char *match = json_dumps(json_object_get(r->definition, "match"), JSON_COMPACT);
    char desc[512];
    int got = rule_matches(r, &f);
    ck_assert_msg(got == want, "%s on %s: expected %s, got %s", match,
                  describe_fact(&f, desc, sizeof(desc)), want ? "a match" : "no match",
                  got ? "a match" : "no match");
    free(match);
}

/* ---- labels ---- */

START_TEST(test_labels)
{
    static const char *const names[] = {"kind",    "jurisdiction", "theme",    "subtheme",
                                        "partner", "seips_domain", "priority", "incident_type",
                                        "cause",   "age_band",     "need"};
    ck_assert_int_eq(SN_ARRAY_LEN(names), FACT_LABEL_COUNT);
    for (int i = 0; i < FACT_LABEL_COUNT; i++) {
        ck_assert_int_eq(fact_label_index(names[i]), i);
        ck_assert_str_eq(fact_label_name(i), names[i]);
    }
    ck_assert_int_eq(fact_label_index("colour"), -1);
    ck_assert_int_eq(fact_label_index(""), -1);
    ck_assert_ptr_null(fact_label_name(FACT_LABEL_COUNT));
    ck_assert_ptr_null(fact_label_name(-1));

    /* the schema's enumeration for group_by is the same list, in the same order */
    char path[4200];
    snprintf(path, sizeof(path), "%s/schemas/rules.v1.json", repo_dir);
    json_error_t jerr;
    json_t *schema = json_load_file(path, 0, &jerr);
    ck_assert_msg(schema != NULL, "%s: %s", path, jerr.text);
    json_t *labels =
        json_object_get(json_object_get(json_object_get(schema, "$defs"), "label"), "enum");
    ck_assert_msg(json_array_size(labels) == FACT_LABEL_COUNT,
                  "rules.v1.json#/$defs/label/enum: expected %d labels, got %zu", FACT_LABEL_COUNT,
                  json_array_size(labels));
    for (int i = 0; i < FACT_LABEL_COUNT; i++)
        ck_assert_str_eq(json_string_value(json_array_get(labels, (size_t)i)), fact_label_name(i));
    json_decref(schema);

    /* from a fact object of facts_from_review() */
    json_t *obj = parse("{\"kind\": \"family_need\", \"need\": \"housing\", \"cause\": \"suid\","
                        " \"theme\": 7}");
    struct fact_labels f;
    fact_labels_from_json(obj, &f);
    ck_assert_str_eq(f.values[FACT_KIND], "family_need");
    ck_assert_str_eq(f.values[FACT_NEED], "housing");
    ck_assert_str_eq(f.values[FACT_CAUSE], "suid");
    ck_assert_ptr_null(f.values[FACT_THEME]); /* not a string */
    ck_assert_ptr_null(f.values[FACT_PARTNER]);
    json_decref(obj);
}
END_TEST

/* ---- matchers ---- */

START_TEST(test_match_equal)
{
    struct rule_set *rs = load_match("[\"theme=economic_support\"]");
    expect_match(rs, fact("theme", "economic_support", NULL), 1);
    expect_match(rs, fact("theme", "teamwork_coordination", NULL), 0);
    expect_match(rs, fact("theme", "economic_support_x", NULL), 0);
    expect_match(rs, fact("need", "economic_support", NULL), 0); /* another label */
    expect_match(rs, fact(NULL), 0);
    const struct rule *r = rule_set_get(rs, 0);
    ck_assert_uint_eq(r->matcher_count, 1);
    ck_assert_int_eq(r->matchers[0].label, FACT_THEME);
    ck_assert_int_eq(r->matchers[0].m.op, MATCH_EQ);
    ck_assert_str_eq(r->matchers[0].m.value, "economic_support");
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_not_equal)
{
    struct rule_set *rs = load_match("[\"partner!=law_enforcement\"]");
    expect_match(rs, fact("partner", "law_enforcement", NULL), 0);
    expect_match(rs, fact("partner", "medical", NULL), 1);
    expect_match(rs, fact(NULL), 1); /* missing is "", which is not law_enforcement */
    ck_assert_int_eq(rule_set_get(rs, 0)->matchers[0].m.op, MATCH_NE);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_regex_anchored)
{
    /* jurisdiction is not a coded label, so any regex loads */
    struct rule_set *rs = load_match("[\"jurisdiction=~law\"]");
    expect_match(rs, fact("jurisdiction", "law", NULL), 1);
    expect_match(rs, fact("jurisdiction", "law_enforcement", NULL), 0);
    expect_match(rs, fact("jurisdiction", "outlaw", NULL), 0);
    expect_match(rs, fact(NULL), 0);
    ck_assert_int_eq(rule_set_get(rs, 0)->matchers[0].m.op, MATCH_RE);
    rule_set_free(rs);

    rs = load_match("[\"jurisdiction=~US-(TN|CA)\"]");
    expect_match(rs, fact("jurisdiction", "US-TN", NULL), 1);
    expect_match(rs, fact("jurisdiction", "US-CA", NULL), 1);
    expect_match(rs, fact("jurisdiction", "US-CA-LAC", NULL), 0);
    expect_match(rs, fact("jurisdiction", "XUS-TN", NULL), 0);
    rule_set_free(rs);

    /* the whole value must match, also when a shorter alternative comes first */
    rs = load_match("[\"partner=~law|law_enforcement\"]");
    expect_match(rs, fact("partner", "law_enforcement", NULL), 1);
    expect_match(rs, fact("partner", "law", NULL), 1);
    expect_match(rs, fact("partner", "medical", NULL), 0);
    rule_set_free(rs);

    rs = load_match("[\"partner=~law.*\"]");
    expect_match(rs, fact("partner", "law_enforcement", NULL), 1);
    expect_match(rs, fact("partner", "medical", NULL), 0);
    rule_set_free(rs);

    /* POSIX extended: +, ?, {m,n}, classes */
    rs = load_match("[\"jurisdiction=~US-[A-Z]{2}(-[A-Z0-9]+)?\"]");
    expect_match(rs, fact("jurisdiction", "US-TN", NULL), 1);
    expect_match(rs, fact("jurisdiction", "US-AZ-NAVAJO", NULL), 1);
    expect_match(rs, fact("jurisdiction", "US-T", NULL), 0);
    expect_match(rs, fact("jurisdiction", "US-AZ-", NULL), 0);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_regex_negated)
{
    struct rule_set *rs = load_match("[\"jurisdiction!~law\"]");
    expect_match(rs, fact("jurisdiction", "law", NULL), 0);
    expect_match(rs, fact("jurisdiction", "law_enforcement", NULL), 1); /* anchored too */
    expect_match(rs, fact(NULL), 1);
    ck_assert_int_eq(rule_set_get(rs, 0)->matchers[0].m.op, MATCH_NRE);
    rule_set_free(rs);

    rs = load_match("[\"partner!~law_enforcement|judiciary\"]");
    expect_match(rs, fact("partner", "law_enforcement", NULL), 0);
    expect_match(rs, fact("partner", "judiciary", NULL), 0);
    expect_match(rs, fact("partner", "medical", NULL), 1);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_missing_labels)
{
    /* as in Prometheus, a missing label is the empty string */
    struct rule_set *rs = load_match("[\"partner=\"]");
    expect_match(rs, fact(NULL), 1);
    expect_match(rs, fact("partner", "", NULL), 1);
    expect_match(rs, fact("partner", "medical", NULL), 0);
    rule_set_free(rs);

    rs = load_match("[\"partner!=\\\"\\\"\"]");
    expect_match(rs, fact(NULL), 0);
    expect_match(rs, fact("partner", "medical", NULL), 1);
    rule_set_free(rs);

    rs = load_match("[\"partner=~.*\"]");
    expect_match(rs, fact(NULL), 1);
    expect_match(rs, fact("partner", "medical", NULL), 1);
    rule_set_free(rs);

    rs = load_match("[\"partner=~.+\"]");
    expect_match(rs, fact(NULL), 0);
    expect_match(rs, fact("partner", "medical", NULL), 1);
    rule_set_free(rs);

    rs = load_match("[\"partner!~.+\"]");
    expect_match(rs, fact(NULL), 1);
    expect_match(rs, fact("partner", "medical", NULL), 0);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_all_must_hold)
{
    struct rule_set *rs = load_match("[\"kind=improvement_opportunity\","
                                     " \"theme=teamwork_coordination\","
                                     " \"partner=law_enforcement\","
                                     " \"jurisdiction!~US-TX.*\"]");
    expect_match(rs,
                 fact("kind", "improvement_opportunity", "theme", "teamwork_coordination",
                      "partner", "law_enforcement", "jurisdiction", "US-TN", NULL),
                 1);
    expect_match(rs,
                 fact("kind", "improvement_opportunity", "theme", "teamwork_coordination",
                      "partner", "medical", "jurisdiction", "US-TN", NULL),
                 0);
    expect_match(rs,
                 fact("kind", "family_need", "theme", "teamwork_coordination", "partner",
                      "law_enforcement", "jurisdiction", "US-TN", NULL),
                 0);
    expect_match(rs,
                 fact("kind", "improvement_opportunity", "theme", "teamwork_coordination",
                      "partner", "law_enforcement", "jurisdiction", "US-TX-HAR", NULL),
                 0);
    expect_match(
        rs, fact("kind", "improvement_opportunity", "theme", "teamwork_coordination", NULL), 0);
    ck_assert_uint_eq(rule_set_get(rs, 0)->matcher_count, 4);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_spelling)
{
    /* spaces around the operator, quoted values with \" and \\ */
    struct rule_set *rs = load_match("[\" theme = \\\"economic_support\\\" \"]");
    expect_match(rs, fact("theme", "economic_support", NULL), 1);
    ck_assert_str_eq(rule_set_get(rs, 0)->matchers[0].m.value, "economic_support");
    rule_set_free(rs);

    rs = load_match("[\"jurisdiction=\\\"a \\\\\\\"b\\\\\\\\\\\"\"]");
    ck_assert_str_eq(rule_set_get(rs, 0)->matchers[0].m.value, "a \"b\\");
    expect_match(rs, fact("jurisdiction", "a \"b\\", NULL), 1);
    rule_set_free(rs);

    /* in a quoted regex a backslash before anything else is kept */
    rs = load_match("[\"jurisdiction=~\\\"US\\\\.TN\\\"\"]");
    ck_assert_str_eq(rule_set_get(rs, 0)->matchers[0].m.value, "US\\.TN");
    expect_match(rs, fact("jurisdiction", "US.TN", NULL), 1);
    expect_match(rs, fact("jurisdiction", "US-TN", NULL), 0);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_match_errors)
{
    char patch[1024];
    snprintf(patch, sizeof(patch), "{\"match\": [%s]}",
             "\"kind=improvement_opportunity\", \"theme\", \"=x\", \"colour=red\","
             " \"partner=~law(\", \"theme=teamwork_cordination\", \"partner=~law\","
             " \"theme=\\\"economic_support\", \"kind=review\", \"cause=~suid|x\"");
    char *file, *text = rules_text(rule_json("m", patch), NULL);
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "m", "/rules/0/match/1", "is not a matcher");
    expect_error(errors, file, "m", "/rules/0/match/2", "is not a matcher");
    expect_error(errors, file, "m", "/rules/0/match/3", "unknown label 'colour'");
    expect_error(errors, file, "m", "/rules/0/match/4", "invalid regular expression 'law('");
    expect_error(errors, file, "m", "/rules/0/match/5",
                 "'teamwork_cordination' is not a theme code of the vocabulary");
    /* anchored, "law" matches no partner code: a typo caught at load */
    expect_error(errors, file, "m", "/rules/0/match/6", "matches no partner code");
    expect_error(errors, file, "m", "/rules/0/match/7", "no closing quote");
    expect_error(errors, file, "m", "/rules/0/match/8", "'review' is not a kind code");
    /* cause=~suid|x matches a code: fine */
    expect_error_count(errors, 8);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

/* ---- groups ---- */

START_TEST(test_group_key)
{
    struct rule_set *rs =
        load_rules_ok(rule_json("a", "{\"group_by\": [\"theme\", \"jurisdiction\"],"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      rule_json("b", "{\"group_by\": [\"jurisdiction\", \"theme\"],"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      rule_json("c", "{\"group_by\": [],"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      rule_json("d", "{\"group_by\": [\"partner\"],"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      NULL);
    struct fact_labels f = fact("theme", "economic_support", "jurisdiction", "US-TN", "partner",
                                "medical", "kind", "improvement_opportunity", NULL);
    char *key = rule_group_key(rule_set_find(rs, "a"), &f);
    ck_assert_str_eq(key, "jurisdiction=US-TN,theme=economic_support");
    free(key);
    /* canonical: the order of group_by does not change the key */
    key = rule_group_key(rule_set_find(rs, "b"), &f);
    ck_assert_str_eq(key, "jurisdiction=US-TN,theme=economic_support");
    free(key);
    /* no group_by: one group */
    key = rule_group_key(rule_set_find(rs, "c"), &f);
    ck_assert_str_eq(key, "");
    free(key);
    key = rule_group_key(rule_set_find(rs, "d"), &f);
    ck_assert_str_eq(key, "partner=medical");
    free(key);
    /* a missing label is an empty value */
    struct fact_labels bare = fact("theme", "economic_support", NULL);
    key = rule_group_key(rule_set_find(rs, "d"), &bare);
    ck_assert_str_eq(key, "partner=");
    free(key);
    key = rule_group_key(rule_set_find(rs, "a"), &bare);
    ck_assert_str_eq(key, "jurisdiction=,theme=economic_support");
    free(key);
    /* separators inside values are encoded, so two groups never share a key */
    struct fact_labels tricky1 = fact("theme", "x,jurisdiction=y", "jurisdiction", "z", NULL);
    struct fact_labels tricky2 = fact("theme", "x", "jurisdiction", "z,theme=x", NULL);
    char *k1 = rule_group_key(rule_set_find(rs, "a"), &tricky1);
    char *k2 = rule_group_key(rule_set_find(rs, "a"), &tricky2);
    ck_assert_str_eq(k1, "jurisdiction=z,theme=x%2Cjurisdiction%3Dy");
    ck_assert_str_eq(k2, "jurisdiction=z%2Ctheme%3Dx,theme=x");
    ck_assert_str_ne(k1, k2);
    free(k1);
    free(k2);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_group_object)
{
    struct rule_set *rs =
        load_rules_ok(rule_json("a", "{\"group_by\": [\"theme\", \"partner\"],"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      rule_json("c", "{\"group_by\": null,"
                                     " \"topic\": \"t\", \"headline\": \"h\", \"summary\": \"s\"}"),
                      NULL);
    struct fact_labels f =
        fact("theme", "economic_support", "jurisdiction", "US-TN", "partner", "housing", NULL);
    json_t *g = rule_group_object(rule_set_find(rs, "a"), &f);
    json_t *want = parse("{\"theme\": \"economic_support\", \"partner\": \"housing\"}");
    char *got_text = json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS);
    char *want_text = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_msg(json_equal(g, want), "expected %s, got %s", want_text, got_text);
    free(got_text);
    free(want_text);
    json_decref(g);
    json_decref(want);

    struct fact_labels bare = fact("theme", "economic_support", NULL);
    g = rule_group_object(rule_set_find(rs, "a"), &bare);
    want = parse("{\"theme\": \"economic_support\", \"partner\": \"\"}");
    ck_assert_msg(json_equal(g, want), "a missing label should be \"\" in the group object");
    json_decref(g);
    json_decref(want);

    /* group_by left out: no labels */
    const struct rule *c = rule_set_find(rs, "c");
    ck_assert_uint_eq(c->group_by_count, 0);
    g = rule_group_object(c, &f);
    ck_assert_uint_eq(json_object_size(g), 0);
    json_decref(g);
    rule_set_free(rs);
}
END_TEST

/* ---- templates ---- */

static void expect_render(const char *template_text, const char *group, size_t reviews,
                          size_t jurisdictions, int64_t window_ms, const char *severity,
                          const char *want)
{
    json_t *g = parse(group);
    char *got = rule_render(template_text, g, reviews, jurisdictions, window_ms, severity);
    ck_assert_msg(strcmp(got, want) == 0, "rendering '%s': expected '%s', got '%s'", template_text,
                  want, got);
    free(got);
    json_decref(g);
}

START_TEST(test_render)
{
    const int64_t day = 86400000;
    expect_render("{theme}: {reviews} reviews from {jurisdictions} jurisdictions in {window}",
                  "{\"theme\": \"economic_support\"}", 12, 4, 180 * day, "advisory",
                  "economic_support: 12 reviews from 4 jurisdictions in 180 days");
    expect_render("[{severity}] {partner}/{theme}", "{\"theme\": \"t\", \"partner\": \"p\"}", 0, 0,
                  day, "critical", "[critical] p/t");
    expect_render("no placeholders", "{}", 1, 1, day, "watch", "no placeholders");
    expect_render("", "{}", 1, 1, day, "watch", "");
    /* literal braces, and a label the group lacks renders empty */
    expect_render("{{theme}} is {theme}; }} {{", "{}", 1, 1, day, NULL, "{theme} is ; } {");
    expect_render("{severity}", "{}", 1, 1, day, NULL, "");
    expect_render("{window}", "{}", 1, 1, 26 * 7 * day, NULL, "26 weeks");
    expect_render("{window}", "{}", 1, 1, 12 * 3600000LL, NULL, "12 hours");
    expect_render("{window}", "{}", 1, 1, 90 * day, NULL, "90 days");
    expect_render("{window}", "{}", 1, 1, day, NULL, "1 day");
    expect_render("{window}", "{}", 1, 1, 14 * day, NULL, "2 weeks");
    expect_render("{window}", "{}", 1, 1, 90 * 60000LL, NULL, "90 minutes");
    expect_render("{window}", "{}", 1, 1, 1500, NULL, "1500 milliseconds");
    expect_render("{reviews}/{jurisdictions}", "{}", 1234567, 89, day, NULL, "1234567/89");

    char buf[8];
    rule_format_duration(180 * day, buf, sizeof(buf)); /* truncated, never overrun */
    ck_assert_str_eq(buf, "180 day");
}
END_TEST

START_TEST(test_render_loaded_rule)
{
    /* the rule's window, as written in the file, ends up in the text */
    struct rule_set *rs = load_rules_ok(
        rule_json("w", "{\"window\": \"26w\", \"summary\": \"{theme} over {window}\"}"), NULL);
    const struct rule *r = rule_set_get(rs, 0);
    struct fact_labels f = fact("theme", "workload", NULL);
    json_t *g = rule_group_object(r, &f);
    char *s = rule_render(r->summary, g, 3, 2, r->window_ms, "watch");
    ck_assert_str_eq(s, "workload over 26 weeks");
    free(s);
    s = rule_render(r->topic, g, 3, 2, r->window_ms, "watch");
    ck_assert_str_eq(s, "notices.theme.workload");
    free(s);
    json_decref(g);
    rule_set_free(rs);
}
END_TEST

/* ---- levels ---- */

static void expect_level(const struct rule *r, size_t reviews, size_t jurisdictions, double growth,
                         int want)
{
    int got = rules_level_reached(r, reviews, jurisdictions, growth);
    ck_assert_msg(got == want,
                  "rule %s with %zu reviews, %zu jurisdictions, growth %g: "
                  "expected level %d, got %d",
                  r->id, reviews, jurisdictions, growth, want, got);
}

START_TEST(test_levels_reached)
{
    /* advisory at 5 reviews / 3 jurisdictions, warning at 10 / 5 */
    struct rule_set *rs = load_rules_ok(rule_json("plain", NULL), NULL);
    const struct rule *r = rule_set_get(rs, 0);
    ck_assert_uint_eq(r->level_count, 2);
    ck_assert_int_eq(r->levels[0].severity, RULE_ADVISORY);
    ck_assert_int_eq(r->levels[1].severity, RULE_WARNING);
    ck_assert(!rule_has_growth(r));
    expect_level(r, 0, 0, 1, -1);
    expect_level(r, 4, 3, 1, -1);
    expect_level(r, 5, 2, 1, -1);
    expect_level(r, 5, 3, 1, 0);
    expect_level(r, 9, 9, 1, 0);
    expect_level(r, 10, 4, 1, 0);
    expect_level(r, 10, 5, 1, 1);
    expect_level(r, 500, 50, 1, 1);
    /* without min_growth, growth plays no part */
    expect_level(r, 10, 5, 0.01, 1);
    expect_level(r, 5, 3, NAN, 0);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_levels_reached_growth)
{
    struct rule_set *rs = load_rules_ok(
        rule_json("spike",
                  "{\"levels\": ["
                  "{\"severity\": \"advisory\", \"min_reviews\": 5, \"min_jurisdictions\": 3},"
                  "{\"severity\": \"watch\", \"min_reviews\": 5, \"min_jurisdictions\": 3,"
                  " \"min_growth\": 2},"
                  "{\"severity\": \"critical\", \"min_reviews\": 20, \"min_jurisdictions\": 5,"
                  " \"min_growth\": 2.5}]}"),
        NULL);
    const struct rule *r = rule_set_get(rs, 0);
    ck_assert(rule_has_growth(r));
    ck_assert(r->levels[0].min_growth == 0);
    ck_assert(r->levels[1].min_growth == 2.0);
    ck_assert(r->levels[2].min_growth == 2.5);
    expect_level(r, 5, 3, 1.5, 0);
    expect_level(r, 5, 3, 2.0, 1);
    expect_level(r, 5, 3, INFINITY, 1); /* nothing in the window before */
    expect_level(r, 5, 3, NAN, 0);
    expect_level(r, 20, 5, 2.4, 1);
    expect_level(r, 20, 5, 2.5, 2);
    expect_level(r, 20, 5, 1.0, 0);
    expect_level(r, 4, 3, 10, -1);
    rule_set_free(rs);
}
END_TEST

/* ---- loading ---- */

START_TEST(test_examples_load)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/deploy/rules", repo_dir);
    struct rule_set *rs = load_ok(dir);
    ck_assert_uint_ge(rule_set_count(rs), 3);
    ck_assert_ptr_null(rule_set_get(rs, rule_set_count(rs)));
    ck_assert_ptr_null(rule_set_find(rs, "no-such-rule"));

    /* teamwork and coordination with law enforcement: advisory at 5 reviews from 3
     * jurisdictions in 180 days, warning at 10 from 5 */
    const struct rule *r = rule_set_find(rs, "teamwork-law-enforcement");
    ck_assert_msg(r != NULL, "deploy/rules has no rule teamwork-law-enforcement");
    ck_assert_int_eq(r->window_ms, 180 * 86400000LL);
    ck_assert_uint_eq(r->level_count, 2);
    ck_assert_int_eq(r->levels[0].severity, RULE_ADVISORY);
    ck_assert_uint_eq(r->levels[0].min_reviews, 5);
    ck_assert_uint_eq(r->levels[0].min_jurisdictions, 3);
    ck_assert_int_eq(r->levels[1].severity, RULE_WARNING);
    ck_assert_uint_eq(r->levels[1].min_reviews, 10);
    ck_assert_uint_eq(r->levels[1].min_jurisdictions, 5);
    struct fact_labels io =
        fact("kind", "improvement_opportunity", "theme", "teamwork_coordination", "partner",
             "law_enforcement", "jurisdiction", "US-TN", NULL);
    struct fact_labels other = fact("kind", "improvement_opportunity", "theme",
                                    "teamwork_coordination", "partner", "medical", NULL);
    ck_assert(rule_matches(r, &io));
    ck_assert(!rule_matches(r, &other));
    expect_level(r, 5, 3, 1, 0);
    expect_level(r, 10, 5, 1, 1);
    json_t *g = rule_group_object(r, &io);
    char *headline = rule_render(r->headline, g, 6, 3, r->window_ms, "advisory");
    ck_assert_contains(headline, "6 reviews from 3 jurisdictions in 180 days");
    free(headline);
    json_decref(g);

    /* economic support as a family need in SUID incidents */
    r = rule_set_find(rs, "economic-support-suid");
    ck_assert_msg(r != NULL, "deploy/rules has no rule economic-support-suid");
    struct fact_labels need = fact("kind", "family_need", "need", "economic_support", "cause",
                                   "suid", "jurisdiction", "US-CA", NULL);
    struct fact_labels drowning =
        fact("kind", "family_need", "need", "economic_support", "cause", "drowning", NULL);
    ck_assert(rule_matches(r, &need));
    ck_assert(!rule_matches(r, &drowning));
    ck_assert_int_ge(r->levels[r->level_count - 1].min_jurisdictions, 2);

    /* a rule grouped by theme: each theme its own group and topic */
    const struct rule *themes = NULL;
    for (size_t i = 0; i < rule_set_count(rs); i++) {
        const struct rule *t = rule_set_get(rs, i);
        if (t->group_by_count == 1 && t->group_by[0] == FACT_THEME) themes = t;
    }
    ck_assert_msg(themes != NULL, "deploy/rules has no rule grouped by theme");
    struct fact_labels w = fact("kind", "improvement_opportunity", "theme", "workload", NULL);
    ck_assert(rule_matches(themes, &w));
    char *key = rule_group_key(themes, &w);
    ck_assert_str_eq(key, "theme=workload");
    free(key);
    g = rule_group_object(themes, &w);
    char *topic = rule_render(themes->topic, g, 1, 1, themes->window_ms, NULL);
    ck_assert_contains(topic, "workload");
    free(topic);
    json_decref(g);

    /* files in name order, rules in file order */
    for (size_t i = 1; i < rule_set_count(rs); i++) {
        const struct rule *a = rule_set_get(rs, i - 1), *b = rule_set_get(rs, i);
        int order = strcmp(a->file, b->file);
        ck_assert_msg(order < 0 || (order == 0 && a->index < b->index),
                      "rules out of order: %s (%s #%zu) before %s (%s #%zu)", a->id, a->file,
                      a->index, b->id, b->file, b->index);
    }
    rule_set_free(rs);

    /* one file on its own loads as well */
    char file[4300];
    snprintf(file, sizeof(file), "%s/teamwork-law-enforcement.json", dir);
    rs = load_ok(file);
    ck_assert_uint_eq(rule_set_count(rs), 1);
    ck_assert_str_eq(rule_set_get(rs, 0)->id, "teamwork-law-enforcement");
    ck_assert_str_eq(rule_set_get(rs, 0)->file, file);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_loaded_fields)
{
    struct rule_set *rs =
        load_rules_ok(rule_json("x.y_z-1", "{\"window\": \"12h\", \"repeat_interval\": \"0s\","
                                           " \"resolve_after\": \"3d\", \"description\": null}"),
                      NULL);
    const struct rule *r = rule_set_get(rs, 0);
    ck_assert_str_eq(r->id, "x.y_z-1");
    ck_assert_str_eq(r->description, "");
    ck_assert_int_eq(r->window_ms, 12 * 3600000LL);
    ck_assert_int_eq(r->repeat_interval_ms, 0);
    ck_assert_int_eq(r->resolve_after_ms, 3 * 86400000LL);
    ck_assert_str_eq(r->topic, "notices.theme.{theme}");
    ck_assert_str_eq(r->headline, "{theme}: {reviews} reviews from {jurisdictions} jurisdictions");
    ck_assert_str_eq(r->summary, "In the last {window} ({severity}).");
    ck_assert_uint_eq(r->group_by_count, 1);
    ck_assert_int_eq(r->group_by[0], FACT_THEME);
    ck_assert_uint_eq(r->index, 0);
    ck_assert_str_eq(json_string_value(json_object_get(r->definition, "id")), "x.y_z-1");
    ck_assert_str_eq(rule_severity_name(RULE_ADVISORY), "advisory");
    ck_assert_str_eq(rule_severity_name(RULE_WATCH), "watch");
    ck_assert_str_eq(rule_severity_name(RULE_WARNING), "warning");
    ck_assert_str_eq(rule_severity_name(RULE_CRITICAL), "critical");
    rule_set_free(rs);

    /* an empty file of rules and an empty directory are valid: no rules */
    const char *dir = make_dir("none.json", "{\"rules\": []}", NULL);
    rs = load_ok(dir);
    ck_assert_uint_eq(rule_set_count(rs), 0);
    rule_set_free(rs);
    rs = load_ok(make_dir(NULL));
    ck_assert_uint_eq(rule_set_count(rs), 0);
    rule_set_free(rs);
}
END_TEST

START_TEST(test_several_errors_in_one_file)
{
    char *text = rules_text(
        rule_json("first", "{\"window\": null, \"match\": [\"colour=red\"]}"),
        rule_json("second", "{\"headline\": \"{colour} rising\","
                            " \"levels\": [{\"severity\": \"warning\", \"min_reviews\": 5,"
                            " \"min_jurisdictions\": 3}, {\"severity\": \"advisory\","
                            " \"min_reviews\": 10, \"min_jurisdictions\": 5}]}"),
        rule_json(NULL, "{\"resolve_after\": \"soon\"}"), NULL);
    char *file;
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "first", "/rules/0/window", "is required");
    expect_error(errors, file, "first", "/rules/0/match/0", "unknown label 'colour'");
    expect_error(errors, file, "second", "/rules/1/headline", "unknown placeholder {colour}");
    expect_error(errors, file, "second", "/rules/1/levels/1/severity", "severities ascend");
    expect_error(errors, file, "#2", "/rules/2/id", "is required");
    expect_error(errors, file, "#2", "/rules/2/resolve_after", "must match the pattern");
    expect_error_count(errors, 6);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_bad_file_rejects_directory)
{
    char *good = rules_text(rule_json("good", NULL), NULL);
    char *bad = rules_text(rule_json("bad", "{\"window\": \"0d\"}"), NULL);
    const char *dir = make_dir("a-good.json", good, "b-bad.json", bad, "README.md", "not json",
                               ".hidden.json", "not json either", NULL);
    char *bad_file = path_in(dir, "b-bad.json");
    json_t *errors = load_fails(dir);
    expect_error(errors, bad_file, "bad", "/rules/0/window", "must be longer than zero");
    expect_error_count(errors, 1); /* README.md and the dot file were not read */
    json_decref(errors);
    free(bad_file);

    /* without the bad file the same directory loads */
    char *path = path_in(dir, "b-bad.json");
    ck_assert_int_eq(unlink(path), 0);
    free(path);
    struct rule_set *rs = load_ok(dir);
    ck_assert_uint_eq(rule_set_count(rs), 1);
    ck_assert_str_eq(rule_set_get(rs, 0)->id, "good");
    rule_set_free(rs);
    free(good);
    free(bad);
}
END_TEST

START_TEST(test_not_json_and_missing)
{
    const char *dir = make_dir("x.json", "{\"rules\": [", "y.json",
                               "{\"rules\": [], \"rules\": []}", "z.json", "[]", NULL);
    char *x = path_in(dir, "x.json"), *y = path_in(dir, "y.json"), *z = path_in(dir, "z.json");
    json_t *errors = load_fails(dir);
    expect_error(errors, x, NULL, "", "not a JSON file: line");
    expect_error(errors, y, NULL, "", "duplicate object key");
    expect_error(errors, z, NULL, "", "must be of type object");
    expect_error_count(errors, 3);
    json_decref(errors);

    /* not UTF-8: reported all the same */
    dir = make_dir("bytes.json", "{\"rules\": [\"\xff\xfe\"]}", NULL);
    char *bytes = path_in(dir, "bytes.json");
    errors = load_fails(dir);
    expect_error(errors, bytes, NULL, "", "not a JSON file");
    expect_error_count(errors, 1);
    json_decref(errors);
    free(bytes);

    /* a directory named with a trailing slash: file names without "//" */
    char *slashed = path_in(dir, "");
    errors = load_fails(slashed);
    char *bytes_file = path_in(dir, "bytes.json");
    expect_error(errors, bytes_file, NULL, "", "not a JSON file");
    json_decref(errors);
    free(bytes_file);
    free(slashed);

    /* a file name that is not UTF-8 still gives an error, the byte replaced */
    dir = make_dir("\xff.json", "nope", NULL);
    char *named = path_in(dir, "?.json");
    errors = load_fails(dir);
    expect_error(errors, named, NULL, "", "not a JSON file");
    json_decref(errors);
    free(named);

    char *missing = path_in(dir, "missing");
    errors = load_fails(missing);
    expect_error(errors, missing, NULL, "", "No such file or directory");
    json_decref(errors);
    free(missing);
    free(x);
    free(y);
    free(z);
}
END_TEST

START_TEST(test_load_order)
{
    char *b = rules_text(rule_json("from-b", NULL), NULL);
    char *a = rules_text(rule_json("from-a-1", NULL), rule_json("from-a-2", NULL), NULL);
    char *c = rules_text(rule_json("from-c", NULL), NULL);
    const char *dir = make_dir("b.json", b, "c.json", c, "a.json", a, NULL);
    struct rule_set *rs = load_ok(dir);
    ck_assert_uint_eq(rule_set_count(rs), 4);
    ck_assert_str_eq(rule_set_get(rs, 0)->id, "from-a-1");
    ck_assert_str_eq(rule_set_get(rs, 1)->id, "from-a-2");
    ck_assert_str_eq(rule_set_get(rs, 2)->id, "from-b");
    ck_assert_str_eq(rule_set_get(rs, 3)->id, "from-c");
    ck_assert_uint_eq(rule_set_get(rs, 1)->index, 1);
    ck_assert_ptr_eq(rule_set_find(rs, "from-b"), rule_set_get(rs, 2));
    rule_set_free(rs);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(test_duplicate_ids)
{
    char *a = rules_text(rule_json("same", NULL), NULL);
    char *b = rules_text(rule_json("other", NULL), rule_json("same", NULL), NULL);
    const char *dir = make_dir("a.json", a, "b.json", b, NULL);
    char *a_file = path_in(dir, "a.json"), *b_file = path_in(dir, "b.json");
    json_t *errors = load_fails(dir);
    char first[4200];
    snprintf(first, sizeof(first), "first defined in %s at /rules/0", a_file);
    expect_error(errors, b_file, "same", "/rules/1/id", "duplicate rule id 'same'");
    expect_error(errors, b_file, "same", "/rules/1/id", first);
    expect_error_count(errors, 1);
    json_decref(errors);
    free(a);
    free(b);
    free(a_file);
    free(b_file);

    /* within one file as well */
    char *file, *text = rules_text(rule_json("twice", NULL), rule_json("twice", NULL), NULL);
    errors = file_fails(text, &file);
    expect_error(errors, file, "twice", "/rules/1/id", "duplicate rule id 'twice'");
    expect_error_count(errors, 1);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_levels_must_ascend)
{
    char *text = rules_text(
        rule_json("severity-order",
                  "{\"levels\": [{\"severity\": \"warning\", \"min_reviews\": 5,"
                  " \"min_jurisdictions\": 3}, {\"severity\": \"warning\", \"min_reviews\": 10,"
                  " \"min_jurisdictions\": 5}]}"),
        rule_json("thresholds",
                  "{\"levels\": [{\"severity\": \"advisory\", \"min_reviews\": 10,"
                  " \"min_jurisdictions\": 5, \"min_growth\": 2}, {\"severity\": \"watch\","
                  " \"min_reviews\": 8, \"min_jurisdictions\": 4}]}"),
        rule_json("same",
                  "{\"levels\": [{\"severity\": \"advisory\", \"min_reviews\": 5,"
                  " \"min_jurisdictions\": 3}, {\"severity\": \"critical\", \"min_reviews\": 5,"
                  " \"min_jurisdictions\": 3}]}"),
        rule_json("growth",
                  "{\"levels\": [{\"severity\": \"watch\", \"min_reviews\": 5,"
                  " \"min_jurisdictions\": 3, \"min_growth\": 3}, {\"severity\": \"warning\","
                  " \"min_reviews\": 5, \"min_jurisdictions\": 3, \"min_growth\": 2}]}"),
        rule_json("schema", "{\"levels\": [{\"severity\": \"severe\", \"min_reviews\": 0,"
                            " \"min_jurisdictions\": 3}]}"),
        NULL);
    char *file;
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "severity-order", "/rules/0/levels/1/severity",
                 "'warning' after 'warning'");
    expect_error(errors, file, "thresholds", "/rules/1/levels/1/min_reviews",
                 "8 is below the 10 of the level before");
    expect_error(errors, file, "thresholds", "/rules/1/levels/1/min_jurisdictions",
                 "4 is below the 5 of the level before");
    expect_error(errors, file, "thresholds", "/rules/1/levels/1", "min_growth of at least 2");
    expect_error(errors, file, "same", "/rules/2/levels/1", "same thresholds");
    expect_error(errors, file, "growth", "/rules/3/levels/1/min_growth",
                 "min_growth of at least 3");
    expect_error(errors, file, "schema", "/rules/4/levels/0/severity", "must be one of");
    expect_error(errors, file, "schema", "/rules/4/levels/0/min_reviews", "must be at least 1");
    expect_error_count(errors, 8);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_group_by_errors)
{
    char *text = rules_text(rule_json("unknown", "{\"group_by\": [\"theme\", \"colour\"]}"),
                            rule_json("twice", "{\"group_by\": [\"theme\", \"theme\"]}"), NULL);
    char *file;
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "unknown", "/rules/0/group_by/1", "must be one of");
    expect_error(errors, file, "twice", "/rules/1/group_by/1", "'theme' appears twice");
    expect_error_count(errors, 2);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_template_errors)
{
    char *text = rules_text(
        rule_json("unknown", "{\"headline\": \"{colour} and {theme}\","
                             " \"summary\": \"{ theme }\"}"),
        rule_json("not-grouped", "{\"summary\": \"{partner} with {theme}\"}"),
        rule_json("topic", "{\"topic\": \"notices.{reviews}.{severity}.{window}\"}"),
        rule_json("brace", "{\"headline\": \"50% {theme\", \"summary\": \"{{ok}} {theme}\"}"),
        rule_json("topic-chars", "{\"topic\": \"notices/{theme}\"}"), NULL);
    char *file;
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "unknown", "/rules/0/headline", "unknown placeholder {colour}");
    expect_error(errors, file, "unknown", "/rules/0/summary", "unknown placeholder { theme }");
    expect_error(errors, file, "not-grouped", "/rules/1/summary",
                 "{partner}: this rule does not group by partner");
    expect_error(errors, file, "topic", "/rules/2/topic", "{reviews} changes between revisions");
    expect_error(errors, file, "topic", "/rules/2/topic", "{severity} changes between revisions");
    expect_error(errors, file, "brace", "/rules/3/headline",
                 "unterminated placeholder at character 5");
    expect_error(errors, file, "topic-chars", "/rules/4/topic", "must match the pattern");
    expect_error_count(errors, 7);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_schema_violations)
{
    char *text = rules_text(
        rule_json("no-window", "{\"window\": null}"), rule_json("Bad Id", "{\"windw\": \"180d\"}"),
        rule_json("types", "{\"match\": \"theme=workload\", \"repeat_interval\": 7,"
                           " \"levels\": []}"),
        NULL);
    char *file;
    json_t *errors = file_fails(text, &file);
    expect_error(errors, file, "no-window", "/rules/0/window", "is required");
    expect_error(errors, file, "Bad Id", "/rules/1/id", "must match the pattern");
    expect_error(errors, file, "Bad Id", "/rules/1/windw", "is not an allowed property");
    expect_error(errors, file, "types", "/rules/2/match", "must be of type array");
    expect_error(errors, file, "types", "/rules/2/repeat_interval", "must be of type string");
    expect_error(errors, file, "types", "/rules/2/levels", "must have at least 1 items");
    expect_error_count(errors, 6);
    json_decref(errors);
    free(file);
    free(text);

    /* the file itself */
    errors = file_fails("{\"rule\": []}", &file);
    expect_error(errors, file, NULL, "/rules", "is required");
    expect_error(errors, file, NULL, "/rule", "is not an allowed property");
    expect_error_count(errors, 2);
    json_decref(errors);
    free(file);

    /* "window": "0d" passes the schema and is refused by the finer check */
    text = rules_text(rule_json("zero", "{\"window\": \"0d\", \"resolve_after\": \"0s\"}"), NULL);
    errors = file_fails(text, &file);
    expect_error(errors, file, "zero", "/rules/0/window", "'0d' must be longer than zero");
    expect_error_count(errors, 1);
    json_decref(errors);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_without_rules_schema)
{
    const char *dir = make_dir("s.json", "{\"$id\": \"s.json\", \"type\": \"object\"}", NULL);
    char err[512] = "";
    struct schema_set *bare = NULL;
    ck_assert_int_eq(schema_set_load(dir, &bare, err, sizeof(err)), SN_OK);
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    ck_assert_int_eq(rules_load(dir, bare, &rs, errors), SN_ERR_CONF);
    ck_assert_ptr_null(rs);
    expect_error(errors, dir, NULL, "", "rules.v1.json is not loaded");
    json_decref(errors);
    schema_set_free(bare);
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("matching");
    tcase_add_test(tc, test_labels);
    tcase_add_test(tc, test_match_equal);
    tcase_add_test(tc, test_match_not_equal);
    tcase_add_test(tc, test_match_regex_anchored);
    tcase_add_test(tc, test_match_regex_negated);
    tcase_add_test(tc, test_match_missing_labels);
    tcase_add_test(tc, test_match_all_must_hold);
    tcase_add_test(tc, test_match_spelling);
    tcase_add_test(tc, test_match_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("groups, templates, levels");
    tcase_add_test(tc, test_group_key);
    tcase_add_test(tc, test_group_object);
    tcase_add_test(tc, test_render);
    tcase_add_test(tc, test_render_loaded_rule);
    tcase_add_test(tc, test_levels_reached);
    tcase_add_test(tc, test_levels_reached_growth);
    suite_add_tcase(s, tc);

    tc = tcase_create("loading");
    tcase_add_test(tc, test_examples_load);
    tcase_add_test(tc, test_loaded_fields);
    tcase_add_test(tc, test_several_errors_in_one_file);
    tcase_add_test(tc, test_bad_file_rejects_directory);
    tcase_add_test(tc, test_not_json_and_missing);
    tcase_add_test(tc, test_load_order);
    tcase_add_test(tc, test_duplicate_ids);
    tcase_add_test(tc, test_levels_must_ascend);
    tcase_add_test(tc, test_group_by_errors);
    tcase_add_test(tc, test_template_errors);
    tcase_add_test(tc, test_schema_violations);
    tcase_add_test(tc, test_without_rules_schema);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    test_find_repo_dir(repo_dir, sizeof(repo_dir));
    return test_main_with_schemas(rules_suite(), "rules", &schemas, run_dir, NULL);
}
