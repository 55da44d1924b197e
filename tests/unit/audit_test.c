/* audit: which routes are audited, the resource taken from a path, and the
 * members of an entry. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

/* resource as compact JSON with sorted keys; the caller frees. */
static char *dump(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    ck_assert_ptr_nonnull(text);
    return text;
}

START_TEST(test_route_find)
{
    const struct audit_route *r = audit_route_find("GET", "/v1/reviews/{jurisdiction}/{review_id}");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->action, "review.read");
    r = audit_route_find("POST", "/v1/subscriptions/{id}/rotate-secret");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->action, "subscription.rotate_secret");
    ck_assert_str_eq(r->id_name, "subscription_id");
    ck_assert_str_eq(audit_route_find("DELETE", "/v1/silences/{id}")->action, "silence.expire");
    ck_assert_str_eq(audit_route_find("POST", "/v1/events")->action, "events.submit");
    /* reads of configuration and of notices are not audited */
    ck_assert_ptr_null(audit_route_find("GET", "/v1/tokens"));
    ck_assert_ptr_null(audit_route_find("GET", "/v1/notices/{id}"));
    ck_assert_ptr_null(audit_route_find("GET", "/v1/subscriptions/{id}"));
    /* the method counts, and a path is not a pattern */
    ck_assert_ptr_null(audit_route_find("GET", "/v1/events"));
    ck_assert_ptr_null(audit_route_find("DELETE", "/v1/tokens/7"));
    ck_assert_ptr_null(audit_route_find(NULL, "/v1/events"));
    ck_assert_ptr_null(audit_route_find("POST", NULL));
}
END_TEST

START_TEST(test_resource_from_path)
{
    const struct audit_route *review =
        audit_route_find("GET", "/v1/reviews/{jurisdiction}/{review_id}");
    char *params[] = {"US-TN", "R-2026-0042"};
    char *text = dump(audit_resource_from_path(review, params, 2));
    ck_assert_str_eq(text, "{\"jurisdiction\":\"US-TN\",\"review_id\":\"R-2026-0042\"}");
    free(text);

    /* {id} takes the route's name, and digits become a number */
    const struct audit_route *test = audit_route_find("POST", "/v1/subscriptions/{id}/test");
    char *id[] = {"12"};
    text = dump(audit_resource_from_path(test, id, 1));
    ck_assert_str_eq(text, "{\"subscription_id\":12}");
    free(text);

    /* what is not a number stays text, as given */
    char *odd[] = {"12a"};
    text = dump(audit_resource_from_path(test, odd, 1));
    ck_assert_str_eq(text, "{\"subscription_id\":\"12a\"}");
    free(text);
    char *huge[] = {"1234567890123456789"};
    text = dump(audit_resource_from_path(test, huge, 1));
    ck_assert_str_eq(text, "{\"subscription_id\":\"1234567890123456789\"}");
    free(text);

    /* no {…}: nothing from the path */
    text = dump(audit_resource_from_path(audit_route_find("POST", "/v1/tokens"), NULL, 0));
    ck_assert_str_eq(text, "{}");
    free(text);
    /* fewer params than the pattern names (cannot happen once routed) */
    text = dump(audit_resource_from_path(review, params, 1));
    ck_assert_str_eq(text, "{\"jurisdiction\":\"US-TN\"}");
    free(text);
}
END_TEST

/* A path may carry any bytes; JSON (and jsonb) only UTF-8. */
START_TEST(test_resource_not_utf8)
{
    const struct audit_route *review =
        audit_route_find("GET", "/v1/reviews/{jurisdiction}/{review_id}");
    struct {
        const char *given, *stored;
    } cases[] = {
        {"R-\xc3\xa9t\xc3\xa9", "R-\xc3\xa9t\xc3\xa9"},                   /* é kept */
        {"\xe2\x82\xac\xf0\x9f\x98\x80", "\xe2\x82\xac\xf0\x9f\x98\x80"}, /* € and an emoji */
        {"a\xff\xfe"
         "b",
         "a??b"},                     /* never UTF-8 */
        {"\xc0\xaf", "??"},           /* overlong '/' */
        {"\xed\xa0\x80", "???"},      /* a surrogate */
        {"\xf4\x90\x80\x80", "????"}, /* past U+10FFFF */
        {"x\xe2\x82", "x??"},         /* cut short */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *params[] = {"US-TN", (char *)cases[i].given};
        json_t *resource = audit_resource_from_path(review, params, 2);
        const char *got = json_string_value(json_object_get(resource, "review_id"));
        ck_assert_msg(got && strcmp(got, cases[i].stored) == 0, "case %zu: expected %s, got %s", i,
                      cases[i].stored, got ? got : "(null)");
        json_decref(resource);
    }
}
END_TEST

START_TEST(test_entry)
{
    struct identity who = {.token_id = 42, .role = ROLE_SUBSCRIBER, .jurisdiction = "US-TN"};
    char text[64];
    audit_who(&who, NULL, text, sizeof(text));
    ck_assert_str_eq(text, "token:42");
    /* a token wins over a certificate; without a token: the subject */
    audit_who(&who, "CN=tn-case-system,O=US-TN", text, sizeof(text));
    ck_assert_str_eq(text, "token:42");
    struct identity cert = {.token_id = 0, .role = ROLE_EMITTER, .jurisdiction = "US-TN"};
    audit_who(&cert, "CN=tn-case-system,O=US-TN", text, sizeof(text));
    ck_assert_str_eq(text, "cert:CN=tn-case-system,O=US-TN");
    audit_who(&cert, NULL, text, sizeof(text));
    ck_assert_str_eq(text, "unknown");

    json_t *e = audit_entry_new(
        &who, NULL, "subscriber", "GET", "/v1/reviews/{jurisdiction}/{review_id}", "review.read",
        json_pack("{s:s}", "review_id", "R-1"), 404, 1767268800123, "127.0.0.1");
    char *dumped = dump(e);
    ck_assert_str_eq(dumped, "{\"action\":\"review.read\",\"at\":1767268800123,"
                             "\"jurisdiction\":\"US-TN\",\"method\":\"GET\",\"peer\":\"127.0.0.1\","
                             "\"resource\":{\"review_id\":\"R-1\"},\"role\":\"subscriber\","
                             "\"route\":\"/v1/reviews/{jurisdiction}/{review_id}\",\"status\":404,"
                             "\"token_id\":42,\"who\":\"token:42\"}");
    free(dumped);

    /* an admin has no jurisdiction; no resource is an empty one */
    struct identity admin = {.token_id = 1, .role = ROLE_ADMIN};
    e = audit_entry_new(&admin, NULL, "admin", "POST", "/v1/rules/reload", "rules.reload", NULL,
                        200, 0, NULL);
    ck_assert(json_is_null(json_object_get(e, "jurisdiction")));
    ck_assert(json_is_null(json_object_get(e, "peer")));
    ck_assert_int_eq(json_object_size(json_object_get(e, "resource")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "token_id")), 1);
    json_decref(e);

    /* a certificate's caller has no token id */
    e = audit_entry_new(&cert, "CN=tn,O=US-TN", "emitter", "POST", "/v1/events", "events.submit",
                        NULL, 202, 0, NULL);
    ck_assert(json_is_null(json_object_get(e, "token_id")));
    ck_assert_str_eq(json_string_value(json_object_get(e, "who")), "cert:CN=tn,O=US-TN");
    json_decref(e);
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, test_route_find);
    tcase_add_test(tc, test_resource_from_path);
    tcase_add_test(tc, test_resource_not_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("entries");
    tcase_add_test(tc, test_entry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(audit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
