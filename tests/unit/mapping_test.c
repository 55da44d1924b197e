/* mapping: the declarative rules that build the canonical review from another
 * version's data (renames, nesting, lookup tables, defaults, constants,
 * arrays item by item), where each value came from, the load-time check of a
 * mapping file, and the test fixture's v2 -> v1 mapping. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"
#include "test_schemas.h"
#include "test_util.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

static json_t *parse(const char *text)
{
    return test_json_parse(text, JSON_DECODE_ANY);
}

static char *dump(const json_t *v)
{
    return test_json_dump(v);
}

/* mapping must pass mapping_check, and map source to want (JSON texts). */
static void expect_mapped(const char *mapping, const char *source, const char *want)
{
    json_t *m = parse(mapping), *s = parse(source), *w = parse(want);
    char err[512] = "";
    ck_assert_msg(mapping_check(m, "m.json", err, sizeof(err)) == SN_OK, "mapping %s refused: %s",
                  mapping, err);
    json_t *errors = json_array();
    json_t *got = mapping_apply(m, "m.json", s, "/data", NULL, errors);
    char *e = dump(errors);
    ck_assert_msg(got != NULL, "mapping %s of %s failed: %s", mapping, source, e);
    char *g = dump(got), *x = dump(w);
    ck_assert_msg(json_equal(got, w), "mapping %s of %s\nexpected %s\ngot      %s", mapping, source,
                  x, g);
    ck_assert_int_eq(json_array_size(errors), 0);
    free(e);
    free(g);
    free(x);
    json_decref(got);
    json_decref(errors);
    json_decref(m);
    json_decref(s);
    json_decref(w);
}

/* mapping_check must refuse mapping with a message containing want. */
static void expect_refused(const char *mapping, const char *want)
{
    json_t *m = parse(mapping);
    char err[512] = "";
    ck_assert_msg(mapping_check(m, "maps/x.json", err, sizeof(err)) == SN_ERR_CONF,
                  "mapping %s was not refused", mapping);
    ck_assert_msg(strncmp(err, "maps/x.json", 11) == 0, "the message does not name the file: %s",
                  err);
    ck_assert_msg(strstr(err, want) != NULL, "mapping %s\nexpected '%s' in: %s", mapping, want,
                  err);
    /* applied anyway (a set loaded without the check), it fails cleanly or
     * builds something: never a crash */
    json_t *errors = json_array(), *provenance = json_object();
    json_t *source = parse("{\"a\": {\"b\": [1, 2]}, \"s\": \"x\"}");
    json_t *got = mapping_apply(m, "maps/x.json", source, "/data", provenance, errors);
    ck_assert_msg(got != NULL || json_array_size(errors) > 0, "a failed apply appended no error");
    json_decref(got);
    json_decref(provenance);
    json_decref(source);
    json_decref(errors);
    json_decref(m);
}

START_TEST(test_renamed_and_moved)
{
    expect_mapped("{\"fields\": [{\"to\": \"/review_id\", \"from\": \"/review/id\"},"
                  " {\"to\": \"/incident/cause\", \"from\": \"/case/incident/cause\"},"
                  " {\"to\": \"/incident/month\", \"from\": \"/month\"},"
                  " {\"to\": \"/flag\", \"from\": \"/case/known\"}]}",
                  "{\"review\": {\"id\": \"R-1\", \"team\": 5},"
                  " \"case\": {\"incident\": {\"cause\": \"suid\"}, \"known\": false},"
                  " \"month\": \"2026-01\", \"unmapped\": \"dropped\"}",
                  "{\"review_id\": \"R-1\", \"incident\": {\"cause\": \"suid\","
                  " \"month\": \"2026-01\"}, \"flag\": false}");
    /* a whole object or array is copied as it is */
    expect_mapped("{\"fields\": [{\"to\": \"/incident\", \"from\": \"/case/incident\"},"
                  " {\"to\": \"/needs\", \"from\": \"/n\"}]}",
                  "{\"case\": {\"incident\": {\"cause\": \"suid\", \"x\": [1]}}, \"n\": [\"a\"]}",
                  "{\"incident\": {\"cause\": \"suid\", \"x\": [1]}, \"needs\": [\"a\"]}");
    /* "" is the whole source */
    expect_mapped("{\"fields\": [{\"to\": \"/all\", \"from\": \"\"}]}", "{\"a\": 1}",
                  "{\"all\": {\"a\": 1}}");
}
END_TEST

START_TEST(test_values_table)
{
    const char *m = "{\"fields\": [{\"to\": \"/type\", \"from\": \"/severity\","
                    " \"values\": {\"death\": \"fatality\", \"near_death\": \"near_fatality\"}}]}";
    expect_mapped(m, "{\"severity\": \"death\"}", "{\"type\": \"fatality\"}");
    expect_mapped(m, "{\"severity\": \"near_death\"}", "{\"type\": \"near_fatality\"}");
    /* not in the table: kept, for the canonical schema to judge */
    expect_mapped(m, "{\"severity\": \"serious_injury\"}", "{\"type\": \"serious_injury\"}");
    expect_mapped(m, "{\"severity\": \"Death\"}", "{\"type\": \"Death\"}");
    expect_mapped(m, "{\"severity\": 3}", "{\"type\": 3}");
    /* each string of an array */
    expect_mapped(m, "{\"severity\": [\"death\", \"x\", 1, \"near_death\"]}",
                  "{\"type\": [\"fatality\", \"x\", 1, \"near_fatality\"]}");
}
END_TEST

START_TEST(test_default_and_absent)
{
    const char *m = "{\"fields\": [{\"to\": \"/needs\", \"from\": \"/family/needs\","
                    " \"default\": []}, {\"to\": \"/note\", \"from\": \"/note\"}]}";
    expect_mapped(m, "{}", "{\"needs\": []}");
    expect_mapped(m, "{\"family\": {}}", "{\"needs\": []}");
    expect_mapped(m, "{\"family\": 7}", "{\"needs\": []}");
    expect_mapped(m, "{\"family\": {\"needs\": [\"housing\"]}, \"note\": null}",
                  "{\"needs\": [\"housing\"], \"note\": null}");
    /* nothing at all: an empty object, for the canonical schema to refuse */
    expect_mapped("{\"fields\": [{\"to\": \"/a\", \"from\": \"/b\"}]}", "{}", "{}");
    expect_mapped("{\"fields\": [{\"to\": \"/a\", \"from\": \"/b\"}]}", "[]", "{}");
}
END_TEST

START_TEST(test_constant_value)
{
    expect_mapped("{\"fields\": [{\"to\": \"/incident/prior\", \"value\": false},"
                  " {\"to\": \"/list\", \"value\": [\"a\", {\"b\": 1}]},"
                  " {\"to\": \"/id\", \"from\": \"/id\"}]}",
                  "{\"id\": \"R\", \"prior\": true}",
                  "{\"incident\": {\"prior\": false}, \"list\": [\"a\", {\"b\": 1}], \"id\": "
                  "\"R\"}");
}
END_TEST

START_TEST(test_each_item)
{
    const char *m =
        "{\"fields\": [{\"to\": \"/improvement_opportunities\", \"from\": \"/opportunities\","
        " \"each\": [{\"to\": \"/theme\", \"from\": \"/theme_code\"},"
        "  {\"to\": \"/seips_domain\", \"from\": \"/seips/domain\"},"
        "  {\"to\": \"/priority\", \"from\": \"/priority\", \"values\": {\"P1\": \"high\"}},"
        "  {\"to\": \"/kind\", \"value\": \"io\"},"
        "  {\"to\": \"/summary\", \"from\": \"/notes\"}]}]}";
    expect_mapped(m,
                  "{\"opportunities\": [{\"theme_code\": \"t1\", \"seips\": {\"domain\": "
                  "\"tasks\"}, \"priority\": \"P1\", \"notes\": \"free\", \"extra\": 1},"
                  " {\"theme_code\": \"t2\", \"priority\": \"P9\"}]}",
                  "{\"improvement_opportunities\": [{\"theme\": \"t1\", \"seips_domain\": "
                  "\"tasks\", \"priority\": \"high\", \"kind\": \"io\", \"summary\": \"free\"},"
                  " {\"theme\": \"t2\", \"priority\": \"P9\", \"kind\": \"io\"}]}");
    expect_mapped(m, "{\"opportunities\": []}", "{\"improvement_opportunities\": []}");
    /* an item that gives nothing becomes an empty object */
    expect_mapped("{\"fields\": [{\"to\": \"/x\", \"from\": \"/y\", \"each\": [{\"to\": \"/a\","
                  " \"from\": \"/b\"}]}]}",
                  "{\"y\": [{\"c\": 1}, 5]}", "{\"x\": [{}, {}]}");
    /* "to": "" is the item itself: objects -> codes */
    expect_mapped("{\"fields\": [{\"to\": \"/family_needs\", \"from\": \"/needs\", \"default\": [],"
                  " \"each\": [{\"to\": \"\", \"from\": \"/code\"}]}]}",
                  "{\"needs\": [{\"code\": \"housing\", \"notes\": \"free\"}, {\"code\": "
                  "\"safe_sleep\"}]}",
                  "{\"family_needs\": [\"housing\", \"safe_sleep\"]}");
    /* nested "each" */
    expect_mapped("{\"fields\": [{\"to\": \"/o\", \"from\": \"/i\", \"each\": [{\"to\": \"/l\","
                  " \"from\": \"/k\", \"each\": [{\"to\": \"\", \"from\": \"\", \"values\": {\"a\":"
                  " \"A\"}}]}]}]}",
                  "{\"i\": [{\"k\": [\"a\", \"b\"]}, {\"k\": []}]}",
                  "{\"o\": [{\"l\": [\"A\", \"b\"]}, {\"l\": []}]}");
}
END_TEST

/* "each" over something else than an array: an error in the source's terms
 * that names the mapping. */
START_TEST(test_each_needs_an_array)
{
    json_t *m = parse("{\"fields\": [{\"to\": \"/id\", \"from\": \"/id\"},"
                      " {\"to\": \"/improvement_opportunities\", \"from\": \"/opps\","
                      " \"each\": [{\"to\": \"/theme\", \"from\": \"/t\"}]}]}");
    json_t *s = parse("{\"id\": \"R\", \"opps\": {\"t\": \"x\"}}");
    json_t *errors = json_array();
    ck_assert_ptr_null(mapping_apply(m, "mappings/v2.json", s, "/data", NULL, errors));
    ck_assert_int_eq(json_array_size(errors), 1);
    json_t *e = json_array_get(errors, 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "pointer")), "/data/opps");
    const char *msg = json_string_value(json_object_get(e, "message"));
    ck_assert_contains(msg, "must be an array");
    ck_assert_contains(msg, "mappings/v2.json");
    ck_assert_contains(msg, "/improvement_opportunities");
    json_decref(errors);
    json_decref(s);
    json_decref(m);
}
END_TEST

/* A value set below one that is not an object: refused, not overwritten. */
START_TEST(test_set_inside_a_non_object)
{
    json_t *m = parse("{\"fields\": [{\"to\": \"/incident\", \"from\": \"/i\"},"
                      " {\"to\": \"/incident/type\", \"from\": \"/t\"}]}");
    json_t *errors = json_array();
    json_t *s = parse("{\"i\": \"text\", \"t\": \"fatality\"}");
    ck_assert_ptr_null(mapping_apply(m, "m.json", s, "/data", NULL, errors));
    ck_assert_int_eq(json_array_size(errors), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "pointer")),
                     "/data/t");
    json_decref(s);
    /* the source's own objects are never written to */
    s = parse("{\"i\": {\"cause\": \"suid\"}, \"t\": \"fatality\"}");
    json_t *before = json_deep_copy(s);
    json_t *got = mapping_apply(m, "m.json", s, "/data", NULL, errors);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "incident"), "type")),
                     "fatality");
    ck_assert_msg(json_equal(s, before), "the source was modified");
    json_decref(got);
    json_decref(before);
    json_decref(s);
    json_decref(errors);
    json_decref(m);
}
END_TEST

START_TEST(test_pointer_escapes_and_indexes)
{
    expect_mapped("{\"fields\": [{\"to\": \"/a~1b\", \"from\": \"/x~0y/c~1d\"},"
                  " {\"to\": \"/second\", \"from\": \"/list/1/v\"},"
                  " {\"to\": \"/lead0\", \"from\": \"/list/01/v\"},"
                  " {\"to\": \"/past\", \"from\": \"/list/2/v\"},"
                  " {\"to\": \"/neg\", \"from\": \"/list/-1/v\"},"
                  " {\"to\": \"/into_string\", \"from\": \"/s/0\"}]}",
                  "{\"x~y\": {\"c/d\": 1}, \"list\": [{\"v\": \"a\"}, {\"v\": \"b\"}], \"s\": "
                  "\"str\"}",
                  "{\"a/b\": 1, \"second\": \"b\"}");
}
END_TEST

START_TEST(test_provenance)
{
    json_t *m = parse("{\"fields\": [{\"to\": \"/jurisdiction\", \"from\": \"/review/j\"},"
                      " {\"to\": \"/incident/type\", \"from\": \"/sev\"},"
                      " {\"to\": \"/k\", \"value\": 1},"
                      " {\"to\": \"/needs\", \"from\": \"/absent\", \"default\": []},"
                      " {\"to\": \"/ios\", \"from\": \"/opps\","
                      "  \"each\": [{\"to\": \"/theme\", \"from\": \"/t\"}]},"
                      " {\"to\": \"/codes\", \"from\": \"/n\", \"each\": [{\"to\": \"\", \"from\":"
                      " \"/code\"}]}]}");
    json_t *s = parse("{\"review\": {\"j\": \"US-TN\"}, \"sev\": \"death\","
                      " \"opps\": [{\"t\": \"a\"}, {\"t\": \"b\", \"u\": 1}],"
                      " \"n\": [{\"code\": \"housing\"}]}");
    json_t *prov = json_object(), *errors = json_array();
    json_t *got = mapping_apply(m, "m.json", s, "/data", prov, errors);
    ck_assert_ptr_nonnull(got);
    json_t *want = parse("{\"/jurisdiction\": \"/data/review/j\", \"/incident/type\": "
                         "\"/data/sev\", \"/needs\": \"/data/absent\", \"/ios\": \"/data/opps\","
                         " \"/ios/0\": \"/data/opps/0\", \"/ios/0/theme\": \"/data/opps/0/t\","
                         " \"/ios/1\": \"/data/opps/1\", \"/ios/1/theme\": \"/data/opps/1/t\","
                         " \"/codes\": \"/data/n\", \"/codes/0\": \"/data/n/0/code\"}");
    char *g = dump(prov), *w = dump(want);
    ck_assert_msg(json_equal(prov, want), "provenance\nexpected %s\ngot      %s", w, g);
    free(g);
    free(w);

    ck_assert_str_eq(mapping_source_of(prov, "/ios/1/theme"), "/data/opps/1/t");
    /* a member the mapping did not write: its nearest mapped ancestor */
    ck_assert_str_eq(mapping_source_of(prov, "/ios/1/priority"), "/data/opps/1");
    ck_assert_str_eq(mapping_source_of(prov, "/ios/7"), "/data/opps");
    ck_assert_ptr_null(mapping_source_of(prov, "/k"));
    ck_assert_ptr_null(mapping_source_of(prov, "/incident/cause"));
    ck_assert_ptr_null(mapping_source_of(prov, "/incident"));
    ck_assert_ptr_null(mapping_source_of(prov, ""));
    json_decref(want);
    json_decref(got);
    json_decref(errors);
    json_decref(prov);
    json_decref(s);
    json_decref(m);
}
END_TEST

START_TEST(test_check_refuses)
{
    expect_refused("[]", "must be a JSON object");
    expect_refused("{}", "#/fields: must be a non-empty array of rules");
    expect_refused("{\"fields\": []}", "#/fields: must be a non-empty array");
    expect_refused("{\"fields\": {\"to\": \"/a\"}}", "#/fields: must be a non-empty array");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\"}], \"rules\": []}",
                   "#/rules: unknown member");
    expect_refused("{\"fields\": [\"/a\"]}", "#/fields/0: a rule must be an object");
    expect_refused("{\"fields\": [{\"from\": \"/a\"}]}", "#/fields/0/to: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"a\", \"from\": \"/a\"}]}",
                   "#/fields/0/to: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"/a~2\", \"from\": \"/a\"}]}",
                   "#/fields/0/to: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": 1, \"from\": \"/a\"}]}",
                   "#/fields/0/to: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"\", \"from\": \"/a\"}]}",
                   "#/fields/0/to: must name a member");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"a\"}]}",
                   "#/fields/0/from: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": null}]}",
                   "#/fields/0/from: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"/a\"}]}",
                   "#/fields/0: a rule needs exactly one of \"from\" and \"value\"");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"value\": 1}]}",
                   "#/fields/0: a rule needs exactly one of");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"form\": \"/a\"}]}",
                   "#/fields/0: unknown member \"form\"");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"value\": 1, \"default\": 2}]}",
                   "#/fields/0/default: only a rule with \"from\"");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"value\": \"x\", \"values\": {\"x\": \"y\"}}]}",
                   "#/fields/0/values: only a rule with \"from\"");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"values\": []}]}",
                   "#/fields/0/values: must be a non-empty object");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"values\": {}}]}",
                   "#/fields/0/values: must be a non-empty object");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"values\": {\"x\": 1}}]}",
                   "#/fields/0/values: the value of \"x\" must be a string");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"values\": {\"x\": \"y\"},"
                   " \"each\": [{\"to\": \"\", \"from\": \"\"}]}]}",
                   "\"values\" and \"each\" exclude each other");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"each\": []}]}",
                   "#/fields/0/each: must be a non-empty array of rules");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"each\": [{\"to\": \"x\","
                   " \"from\": \"/b\"}]}]}",
                   "#/fields/0/each/0/to: must be a JSON pointer");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/b\"}, {\"to\": \"/c\", \"value\":"
                   " 1}, {\"to\": \"/a\", \"from\": \"/d\"}]}",
                   "#/fields/2/to: rule 0 already sets /a");
    expect_refused("{\"fields\": [{\"to\": \"/a\", \"from\": \"/a\", \"each\": [{\"to\": \"\","
                   " \"from\": \"/b\"}, {\"to\": \"\", \"from\": \"/c\"}]}]}",
                   "#/fields/0/each/1/to: rule 0 already sets");

    /* "each" nested deeper than 8 */
    json_t *rules = parse("[{\"to\": \"\", \"from\": \"\"}]");
    for (int i = 0; i < 9; i++)
        rules = json_pack("[{s:s,s:s,s:o}]", "to", "", "from", "", "each", rules);
    json_t *m = json_pack("{s:[{s:s,s:s,s:o}]}", "fields", "to", "/a", "from", "/a", "each", rules);
    char *text = dump(m);
    expect_refused(text, "nested more than 8 deep");
    free(text);
    json_decref(m);
}
END_TEST

START_TEST(test_check_accepts_annotations)
{
    expect_mapped("{\"$comment\": \"c\", \"title\": \"t\", \"description\": \"d\","
                  " \"fields\": [{\"$comment\": \"why\", \"to\": \"/a\", \"from\": \"/b\"}]}",
                  "{\"b\": 2}", "{\"a\": 2}");
}
END_TEST

/* The test fixture's v2 -> v1 mapping, on the README example written in v2:
 * the README's v1 review, member for member. */
START_TEST(test_fixture_v2_to_v1)
{
    char repo[3000], path[4096];
    test_find_repo_dir(repo, sizeof(repo));
    snprintf(path, sizeof(path), "%s/tests/fixtures/schema-v2/mappings/review-completed.v2.json",
             repo);
    json_error_t jerr;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(m != NULL, "%s: %s", path, jerr.text);
    char err[512] = "";
    ck_assert_msg(mapping_check(m, "mappings/review-completed.v2.json", err, sizeof(err)) == SN_OK,
                  "%s", err);
    json_t *v2 = parse(
        "{\"review\": {\"id\": \"CIR-2026-0042\", \"jurisdiction\": \"US-TN\","
        "  \"finalized\": \"2026-03-02T15:00:00Z\", \"team\": {\"size\": 6}},"
        " \"case\": {\"incident\": {\"severity\": \"death\", \"cause\": \"suid\","
        "  \"month\": \"2026-01\", \"age_band\": \"0-3\"}, \"prior_agency_involvement\": true},"
        " \"opportunities\": ["
        "  {\"theme_code\": \"teamwork_coordination\", \"subtheme_code\": \"joint_investigation\","
        "   \"partner_agency\": \"law_enforcement\", \"seips\": {\"domain\": \"organization\"},"
        "   \"priority\": \"P1\", \"notes\": \"Free text for the jurisdiction's own use.\"},"
        "  {\"theme_code\": \"economic_support\", \"subtheme_code\": \"concrete_supports\","
        "   \"seips\": {\"domain\": \"external_environment\"}, \"priority\": \"P2\"}],"
        " \"family_needs\": [{\"code\": \"economic_support\", \"notes\": \"free\"},"
        "  {\"code\": \"safe_sleep\"}]}");
    json_t *v1 = parse(TEST_REVIEW_V1);
    json_t *errors = json_array();
    json_t *got = mapping_apply(m, "mappings/review-completed.v2.json", v2, "/data", NULL, errors);
    ck_assert_ptr_nonnull(got);
    char *g = dump(got), *w = dump(v1);
    ck_assert_msg(json_equal(got, v1), "expected %s\ngot      %s", w, g);
    free(g);
    free(w);
    json_decref(got);

    /* without family_needs: the default, no needs */
    json_object_del(v2, "family_needs");
    got = mapping_apply(m, "mappings/review-completed.v2.json", v2, "/data", NULL, errors);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(json_array_size(json_object_get(got, "family_needs")), 0);
    ck_assert(json_is_array(json_object_get(got, "family_needs")));
    json_decref(got);
    json_decref(errors);
    json_decref(v1);
    json_decref(v2);
    json_decref(m);
}
END_TEST

static Suite *mapping_suite(void)
{
    Suite *s = suite_create("mapping");
    TCase *tc = tcase_create("apply");
    tcase_add_test(tc, test_renamed_and_moved);
    tcase_add_test(tc, test_values_table);
    tcase_add_test(tc, test_default_and_absent);
    tcase_add_test(tc, test_constant_value);
    tcase_add_test(tc, test_each_item);
    tcase_add_test(tc, test_each_needs_an_array);
    tcase_add_test(tc, test_set_inside_a_non_object);
    tcase_add_test(tc, test_pointer_escapes_and_indexes);
    tcase_add_test(tc, test_provenance);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_test(tc, test_check_refuses);
    tcase_add_test(tc, test_check_accepts_annotations);
    suite_add_tcase(s, tc);

    tc = tcase_create("fixture");
    tcase_add_test(tc, test_fixture_v2_to_v1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mapping_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
