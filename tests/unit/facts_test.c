/* facts: a review -> one fact per improvement opportunity and per family
 * need, with the incident's labels; free text never becomes a label. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"
#include "test_util.h"

static json_t *parse(const char *text)
{
    return test_json_parse(text, 0);
}

/* Runs facts_from_review on review and compares the result with want (JSON
 * text: the facts in order), printing both when they differ. */
static void expect_facts(const char *review, const char *want)
{
    json_t *data = parse(review);
    json_t *expected = parse(want);
    json_t *facts = facts_from_review(data);
    ck_assert_msg(json_is_array(facts), "facts_from_review did not return an array");
    char *got = json_dumps(facts, JSON_COMPACT | JSON_SORT_KEYS);
    char *exp = json_dumps(expected, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_msg(json_equal(facts, expected), "review %s\nexpected facts: %s\ngot:            %s",
                  review, exp, got);
    free(got);
    free(exp);
    json_decref(facts);
    json_decref(expected);
    json_decref(data);
}

#define INCIDENT                                                                                   \
    "\"incident\": {\"type\": \"fatality\", \"cause\": \"suid\", \"month\": \"2026-01\","          \
    " \"child_age_band\": \"0-3\", \"prior_agency_involvement\": true}"
#define HEAD                                                                                       \
    "\"review_id\": \"CIR-2026-0042\", \"jurisdiction\": \"US-TN\","                               \
    " \"finalized_at\": \"2026-03-02T15:00:00Z\", " INCIDENT
#define LABELS "\"incident_type\": \"fatality\", \"cause\": \"suid\", \"age_band\": \"0-3\""

START_TEST(test_opportunities_and_needs)
{
    expect_facts(
        "{" HEAD ", \"improvement_opportunities\": ["
        " {\"theme\": \"teamwork_coordination\", \"subtheme\": \"joint_investigation\","
        "  \"partner\": \"law_enforcement\", \"seips_domain\": \"organization\","
        "  \"priority\": \"high\", \"summary\": \"Free text for the jurisdiction's own use.\"},"
        " {\"theme\": \"economic_support\", \"subtheme\": \"concrete_supports\","
        "  \"seips_domain\": \"external_environment\", \"priority\": \"medium\"}],"
        " \"family_needs\": [\"economic_support\", \"safe_sleep\"]}",
        "[{\"kind\": \"improvement_opportunity\", \"theme\": \"teamwork_coordination\","
        "  \"subtheme\": \"joint_investigation\", \"partner\": \"law_enforcement\","
        "  \"seips_domain\": \"organization\", \"priority\": \"high\", " LABELS "},"
        " {\"kind\": \"improvement_opportunity\", \"theme\": \"economic_support\","
        "  \"subtheme\": \"concrete_supports\", \"seips_domain\": \"external_environment\","
        "  \"priority\": \"medium\", " LABELS "},"
        " {\"kind\": \"family_need\", \"need\": \"economic_support\", " LABELS "},"
        " {\"kind\": \"family_need\", \"need\": \"safe_sleep\", " LABELS "}]");
}
END_TEST

/* subtheme, partner (optional in the schema) and priority appear only when given */
START_TEST(test_optional_labels)
{
    expect_facts(
        "{" HEAD ", \"improvement_opportunities\": ["
        " {\"theme\": \"workload\", \"seips_domain\": \"organization\"},"
        " {\"theme\": \"workload\", \"partner\": \"medical\", \"seips_domain\": \"tasks\","
        "  \"priority\": \"low\"},"
        " {\"theme\": \"training\", \"subtheme\": \"turnover\", \"seips_domain\": "
        "\"person\", \"priority\": \"high\"}], \"family_needs\": []}",
        "[{\"kind\": \"improvement_opportunity\", \"theme\": \"workload\","
        "  \"seips_domain\": \"organization\", " LABELS "},"
        " {\"kind\": \"improvement_opportunity\", \"theme\": \"workload\","
        "  \"partner\": \"medical\", \"seips_domain\": \"tasks\", \"priority\": \"low\", " LABELS
        "},"
        " {\"kind\": \"improvement_opportunity\", \"theme\": \"training\","
        "  \"subtheme\": \"turnover\", \"seips_domain\": \"person\", \"priority\": "
        "\"high\", " LABELS "}]");
}
END_TEST

START_TEST(test_no_family_needs)
{
    const char *want = "[{\"kind\": \"improvement_opportunity\", \"theme\": \"policy\","
                       "  \"seips_domain\": \"organization\", \"priority\": \"low\", " LABELS "}]";
    expect_facts("{" HEAD ", \"improvement_opportunities\": [{\"theme\": \"policy\","
                 " \"seips_domain\": \"organization\", \"priority\": \"low\"}],"
                 " \"family_needs\": []}",
                 want);
    /* absent is the same as empty */
    expect_facts("{" HEAD ", \"improvement_opportunities\": [{\"theme\": \"policy\","
                 " \"seips_domain\": \"organization\", \"priority\": \"low\"}]}",
                 want);
}
END_TEST

START_TEST(test_needs_only_and_empty)
{
    expect_facts("{" HEAD ", \"improvement_opportunities\": [], \"family_needs\": [\"housing\"]}",
                 "[{\"kind\": \"family_need\", \"need\": \"housing\", " LABELS "}]");
    expect_facts("{" HEAD ", \"improvement_opportunities\": [], \"family_needs\": []}", "[]");
    expect_facts("{}", "[]");
}
END_TEST

/* Every fact carries its own review's incident labels. */
START_TEST(test_incident_labels)
{
    expect_facts("{\"incident\": {\"type\": \"near_fatality\", \"cause\": \"drowning\","
                 " \"month\": \"2025-07\", \"child_age_band\": \"4-7\","
                 " \"prior_agency_involvement\": false},"
                 " \"improvement_opportunities\": [{\"theme\": \"assessment\","
                 " \"seips_domain\": \"tasks\", \"priority\": \"medium\"}],"
                 " \"family_needs\": [\"child_care\", \"parenting_support\", \"child_care\"]}",
                 "[{\"kind\": \"improvement_opportunity\", \"theme\": \"assessment\","
                 "  \"seips_domain\": \"tasks\", \"priority\": \"medium\","
                 "  \"incident_type\": \"near_fatality\", \"cause\": \"drowning\","
                 "  \"age_band\": \"4-7\"},"
                 " {\"kind\": \"family_need\", \"need\": \"child_care\","
                 "  \"incident_type\": \"near_fatality\", \"cause\": \"drowning\","
                 "  \"age_band\": \"4-7\"},"
                 " {\"kind\": \"family_need\", \"need\": \"parenting_support\","
                 "  \"incident_type\": \"near_fatality\", \"cause\": \"drowning\","
                 "  \"age_band\": \"4-7\"},"
                 " {\"kind\": \"family_need\", \"need\": \"child_care\","
                 "  \"incident_type\": \"near_fatality\", \"cause\": \"drowning\","
                 "  \"age_band\": \"4-7\"}]");
}
END_TEST

/* No label of any fact holds the free text, whatever key the text is under. */
START_TEST(test_summary_never_copied)
{
    const char *secret = "Child was seen by J. Doe at 12 Elm St";
    char review[2048];
    snprintf(review, sizeof(review),
             "{" HEAD ", \"improvement_opportunities\": ["
             " {\"theme\": \"supervision\", \"seips_domain\": \"person\", \"priority\": \"high\","
             "  \"summary\": \"%s\"},"
             " {\"theme\": \"technology\", \"partner\": \"education\", \"seips_domain\": "
             "\"tools_technology\", \"priority\": \"low\", \"summary\": \"%s\"}],"
             " \"family_needs\": [\"food_security\"]}",
             secret, secret);
    json_t *data = parse(review);
    json_t *facts = facts_from_review(data);
    ck_assert_int_eq(json_array_size(facts), 3);
    size_t i;
    json_t *fact;
    json_array_foreach(facts, i, fact)
    {
        char *text = json_dumps(fact, JSON_COMPACT);
        ck_assert_msg(json_object_get(fact, "summary") == NULL, "fact %zu has a summary: %s", i,
                      text);
        ck_assert_msg(strstr(text, "J. Doe") == NULL, "fact %zu holds the free text: %s", i, text);
        const char *key;
        json_t *value;
        json_object_foreach(fact, key, value) ck_assert_msg(
            json_is_string(value), "fact %zu: label %s is not a string: %s", i, key, text);
        free(text);
    }
    json_decref(facts);
    json_decref(data);
}
END_TEST

/* The facts are a new array: freeing the review leaves them intact. */
START_TEST(test_facts_outlive_review)
{
    json_t *data = parse("{" HEAD ", \"improvement_opportunities\": [{\"theme\": \"policy\","
                         " \"seips_domain\": \"organization\", \"priority\": \"low\"}],"
                         " \"family_needs\": [\"housing\"]}");
    json_t *facts = facts_from_review(data);
    json_decref(data);
    ck_assert_int_eq(json_array_size(facts), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(facts, 0), "theme")),
                     "policy");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(facts, 1), "need")),
                     "housing");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(facts, 1), "cause")), "suid");
    json_decref(facts);
}
END_TEST

static Suite *facts_suite(void)
{
    Suite *s = suite_create("facts");
    TCase *tc = tcase_create("from_review");
    tcase_add_test(tc, test_opportunities_and_needs);
    tcase_add_test(tc, test_optional_labels);
    tcase_add_test(tc, test_no_family_needs);
    tcase_add_test(tc, test_needs_only_and_empty);
    tcase_add_test(tc, test_incident_labels);
    tcase_add_test(tc, test_summary_never_copied);
    tcase_add_test(tc, test_facts_outlive_review);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(facts_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
