/* ratelimit: the token bucket (burst, refill, waits) and the table of
 * callers (independent keys, Retry-After in whole seconds, idle keys
 * dropped, busy ones kept). Times are given, never read from a clock. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "ratelimit.h"

#define ck_assert_near(got, want)                                                                  \
    ck_assert_msg((got) - (want) < 1e-9 && (want) - (got) < 1e-9, "expected %.9f, got %.9f",       \
                  (double)(want), (double)(got))

START_TEST(test_bucket_burst_then_refused)
{
    struct token_bucket b = {3, 100.0};
    double wait = -1;
    for (int i = 0; i < 3; i++)
        ck_assert_msg(token_bucket_take(&b, 2, 3, 100.0, &wait) == 1,
                      "request %d of a burst of 3 was refused", i + 1);
    ck_assert_int_eq(token_bucket_take(&b, 2, 3, 100.0, &wait), 0);
    ck_assert_near(wait, 0.5); /* one request every 1/2 s */
    /* refusals take nothing: the wait does not grow */
    ck_assert_int_eq(token_bucket_take(&b, 2, 3, 100.25, &wait), 0);
    ck_assert_near(wait, 0.25);
    ck_assert_int_eq(token_bucket_take(&b, 2, 3, 100.5, &wait), 1);
    ck_assert_int_eq(token_bucket_take(&b, 2, 3, 100.5, &wait), 0);
}
END_TEST

START_TEST(test_bucket_refill_is_capped_at_burst)
{
    struct token_bucket b = {0, 0.0};
    double wait = 0;
    int passed = 0;
    /* an hour idle earns a burst, not 3600 * rate requests */
    while (token_bucket_take(&b, 10, 5, 3600.0, &wait))
        passed++;
    ck_assert_int_eq(passed, 5);
    ck_assert_near(wait, 0.1);
}
END_TEST

START_TEST(test_bucket_steady_rate)
{
    struct token_bucket b = {1, 0.0};
    double wait = 0;
    int passed = 0;
    /* 4 requests a second for 10 s against a rate of 2 with no burst to speak
     * of: about half pass */
    for (int i = 0; i < 40; i++)
        passed += token_bucket_take(&b, 2, 1, i * 0.25, &wait);
    ck_assert_msg(passed == 20, "expected 20 of 40 requests to pass at half the rate, got %d",
                  passed);
}
END_TEST

START_TEST(test_bucket_clock_going_back_adds_nothing)
{
    struct token_bucket b = {0, 50.0};
    double wait = 0;
    ck_assert_int_eq(token_bucket_take(&b, 1, 1, 10.0, &wait), 0);
    ck_assert_near(b.updated_at, 50.0);
    ck_assert_near(wait, 1.0);
}
END_TEST

START_TEST(test_keys_are_independent)
{
    struct ratelimit *rl = ratelimit_new(1, 2);
    unsigned retry = 0;
    ck_assert_int_eq(ratelimit_take(rl, "token:1", 0, &retry), 1);
    ck_assert_int_eq(ratelimit_take(rl, "token:1", 0, &retry), 1);
    ck_assert_int_eq(ratelimit_take(rl, "token:1", 0, &retry), 0);
    ck_assert_uint_eq(retry, 1);
    /* another caller has a bucket of its own */
    ck_assert_int_eq(ratelimit_take(rl, "token:2", 0, &retry), 1);
    ck_assert_int_eq(ratelimit_take(rl, "cert:CN=a", 0, &retry), 1);
    ck_assert_uint_eq(ratelimit_size(rl), 3);
    /* and the first one passes again once a token is back */
    ck_assert_int_eq(ratelimit_take(rl, "token:1", 1.0, &retry), 1);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_retry_after_rounds_up_to_whole_seconds)
{
    struct ratelimit *rl = ratelimit_new(0.25, 1); /* one request every 4 s */
    unsigned retry = 0;
    ck_assert_int_eq(ratelimit_take(rl, "k", 0, &retry), 1);
    ck_assert_int_eq(ratelimit_take(rl, "k", 0, &retry), 0);
    ck_assert_uint_eq(retry, 4);
    ck_assert_int_eq(ratelimit_take(rl, "k", 2.5, &retry), 0);
    ck_assert_uint_eq(retry, 2); /* 1.5 s left */
    ck_assert_int_eq(ratelimit_take(rl, "k", 3.999, &retry), 0);
    ck_assert_uint_eq(retry, 1); /* never 0 */
    ck_assert_int_eq(ratelimit_take(rl, "k", 4.5, &retry), 1);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_idle_keys_are_dropped_busy_ones_kept)
{
    struct ratelimit *rl = ratelimit_new(1, 2);
    unsigned retry = 0;
    char key[32];
    /* a busy caller with an empty bucket */
    ck_assert_int_eq(ratelimit_take(rl, "busy", 0, &retry), 1);
    ck_assert_int_eq(ratelimit_take(rl, "busy", 0, &retry), 1);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "token:%d", i);
        /* each caller once a second of a 5000 s run: full again by the next */
        ck_assert_int_eq(ratelimit_take(rl, key, i * 1.0, &retry), 1);
        ck_assert_int_eq(ratelimit_take(rl, "busy", i * 1.0, &retry) || i == 0, 1);
    }
    ck_assert_msg(ratelimit_size(rl) < 200,
                  "callers whose bucket filled up again should be dropped; %zu kept",
                  ratelimit_size(rl));
    /* the busy caller kept its (empty) bucket through every rebuild */
    ck_assert_int_eq(ratelimit_take(rl, "busy", 4999.0, &retry), 0);
    ratelimit_free(rl);
}
END_TEST

START_TEST(test_many_active_keys)
{
    struct ratelimit *rl = ratelimit_new(1, 1);
    unsigned retry = 0;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "token:%d", i);
        ck_assert_int_eq(ratelimit_take(rl, key, 0, &retry), 1);
    }
    ck_assert_uint_eq(ratelimit_size(rl), 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "token:%d", i);
        ck_assert_msg(ratelimit_take(rl, key, 0.5, &retry) == 0, "%s passed twice in 0.5 s", key);
    }
    ratelimit_free(rl);
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("bucket");
    tcase_add_test(tc, test_bucket_burst_then_refused);
    tcase_add_test(tc, test_bucket_refill_is_capped_at_burst);
    tcase_add_test(tc, test_bucket_steady_rate);
    tcase_add_test(tc, test_bucket_clock_going_back_adds_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("table");
    tcase_add_test(tc, test_keys_are_independent);
    tcase_add_test(tc, test_retry_after_rounds_up_to_whole_seconds);
    tcase_add_test(tc, test_idle_keys_are_dropped_busy_ones_kept);
    tcase_add_test(tc, test_many_active_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ratelimit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
