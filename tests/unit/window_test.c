/* window: the sliding event-time window of one (rule, group). Distinct reviews
 * and jurisdictions, expiry at the exact boundary, out-of-order and late facts,
 * retraction, the previous period, breakdowns; then a long random history
 * checked against a brute-force recomputation. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sn.h"
#include "window.h"

/* A listing rendered as "value:reviews value:reviews", in call order. */
struct listing {
    char text[4096];
    size_t len;
};

static void listing_add(const char *value, size_t reviews, void *arg)
{
    struct listing *l = arg;
    int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s:%zu", l->len ? " " : "",
                     value, reviews);
    ck_assert_msg(n > 0 && (size_t)n < sizeof(l->text) - l->len, "listing too long for the test");
    l->len += (size_t)n;
}

#define expect_jurisdictions(w, want)                                                              \
    do {                                                                                           \
        struct listing got_ = {{0}, 0};                                                            \
        window_jurisdictions((w), listing_add, &got_);                                             \
        ck_assert_msg(strcmp(got_.text, (want)) == 0,                                              \
                      "jurisdictions: expected \"%s\"\n                 got \"%s\"", (want),       \
                      got_.text);                                                                  \
    } while (0)

#define expect_breakdown(w, dim, want)                                                             \
    do {                                                                                           \
        struct listing got_ = {{0}, 0};                                                            \
        window_breakdown((w), (dim), listing_add, &got_);                                          \
        ck_assert_msg(strcmp(got_.text, (want)) == 0,                                              \
                      "breakdown %s: expected \"%s\"\n                 got \"%s\"", #dim, (want),  \
                      got_.text);                                                                  \
    } while (0)

#define expect_counts(which, got_counts, f, r, j)                                                  \
    do {                                                                                           \
        struct window_counts c_ = (got_counts);                                                    \
        ck_assert_msg(c_.facts == (size_t)(f) && c_.reviews == (size_t)(r) &&                      \
                          c_.jurisdictions == (size_t)(j),                                         \
                      "%s: expected facts=%zu reviews=%zu jurisdictions=%zu\n"                     \
                      "     got facts=%zu reviews=%zu jurisdictions=%zu",                          \
                      which, (size_t)(f), (size_t)(r), (size_t)(j), c_.facts, c_.reviews,          \
                      c_.jurisdictions);                                                           \
    } while (0)

#define expect_current(w, f, r, j)  expect_counts("current", window_current(w), f, r, j)
#define expect_previous(w, f, r, j) expect_counts("previous", window_previous(w), f, r, j)

#define expect_int(what, got, want)                                                                \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        ck_assert_msg(got_ == want_, "%s: expected %lld, got %lld", what, want_, got_);            \
    } while (0)

static int add(struct window *w, int64_t id, int64_t t, const char *review, const char *jur)
{
    return window_add(w, id, t, review, jur, NULL);
}

START_TEST(test_new_and_empty)
{
    ck_assert_msg(window_new(0, 0) == NULL, "a zero length was accepted");
    ck_assert_msg(window_new(-1, 1) == NULL, "a negative length was accepted");
    window_free(NULL);

    struct window *w = window_new(1000, 1);
    ck_assert_ptr_nonnull(w);
    expect_int("now before anything", window_now(w), INT64_MIN);
    expect_int("next expiry of an empty window", window_next_expiry(w), INT64_MAX);
    expect_current(w, 0, 0, 0);
    expect_previous(w, 0, 0, 0);
    expect_jurisdictions(w, "");
    expect_breakdown(w, WINDOW_CAUSE, "");
    expect_int("remove from an empty window", window_remove(w, 1), 0);
    expect_int("advance an empty window", window_advance(w, 5000), 0);
    expect_int("now after advance", window_now(w), 5000);
    window_free(w);
}
END_TEST

/* Three facts of one review count once; two reviews of one jurisdiction make
 * one jurisdiction. */
START_TEST(test_distinct_counts)
{
    struct window *w = window_new(1000, 0);
    expect_int("add", add(w, 1, 100, "R1", "US-TN"), 1);
    expect_int("add", add(w, 2, 110, "R1", "US-TN"), 1);
    expect_int("add", add(w, 3, 120, "R1", "US-TN"), 1);
    expect_current(w, 3, 1, 1);
    expect_jurisdictions(w, "US-TN:1");

    add(w, 4, 130, "R2", "US-TN");
    expect_current(w, 4, 2, 1);
    expect_jurisdictions(w, "US-TN:2");

    add(w, 5, 140, "R3", "US-GA");
    expect_current(w, 5, 3, 2);
    expect_jurisdictions(w, "US-GA:1 US-TN:2");

    /* A review key seen under a second jurisdiction counts under both. */
    add(w, 6, 150, "R3", "US-AL");
    expect_current(w, 6, 3, 3);
    expect_jurisdictions(w, "US-AL:1 US-GA:1 US-TN:2");

    /* An absent jurisdiction counts the review but no jurisdiction. */
    add(w, 7, 160, "R4", NULL);
    expect_current(w, 7, 4, 3);
    expect_jurisdictions(w, "US-AL:1 US-GA:1 US-TN:2");
    window_free(w);
}
END_TEST

/* A fact at t is in the window while now < t + L and gone once now >= t + L;
 * one arriving when t <= now - L is ignored. */
START_TEST(test_expiry_boundary)
{
    struct window *w = window_new(1000, 0);
    expect_int("add", add(w, 1, 5000, "R1", "US-TN"), 1);
    expect_int("now follows the add", window_now(w), 5000);
    expect_int("next expiry", window_next_expiry(w), 6000);
    expect_int("advance to t + L - 1 drops", window_advance(w, 5999), 0);
    expect_current(w, 1, 1, 1);
    expect_int("advance to t + L drops", window_advance(w, 6000), 1);
    expect_current(w, 0, 0, 0);
    expect_previous(w, 0, 0, 0);
    expect_jurisdictions(w, "");
    expect_int("next expiry once empty", window_next_expiry(w), INT64_MAX);

    /* now = 6000: a fact at 5000 is already out, one at 5001 still in */
    expect_int("add at now - L", add(w, 2, 5000, "R2", "US-TN"), 0);
    expect_current(w, 0, 0, 0);
    expect_int("add at now - L + 1", add(w, 3, 5001, "R3", "US-GA"), 1);
    expect_current(w, 1, 1, 1);
    expect_int("now unchanged by an older fact", window_now(w), 6000);
    expect_int("advance to 6000 again", window_advance(w, 6000), 0);
    expect_current(w, 1, 1, 1);
    expect_int("advance to 6001", window_advance(w, 6001), 1);
    expect_current(w, 0, 0, 0);
    window_free(w);
}
END_TEST

/* With keep_previous a fact at t is current while now < t + L, previous while
 * t + L <= now < t + 2L, gone at t + 2L. */
START_TEST(test_expiry_boundary_previous)
{
    struct window *w = window_new(1000, 1);
    add(w, 1, 5000, "R1", "US-TN");
    expect_int("advance to 5999", window_advance(w, 5999), 0);
    expect_current(w, 1, 1, 1);
    expect_previous(w, 0, 0, 0);
    expect_int("advance to 6000 moves, not drops", window_advance(w, 6000), 0);
    expect_current(w, 0, 0, 0);
    expect_previous(w, 1, 1, 1);
    expect_int("next expiry of a previous fact", window_next_expiry(w), 7000);
    expect_int("advance to 6999", window_advance(w, 6999), 0);
    expect_previous(w, 1, 1, 1);
    expect_int("advance to 7000 drops", window_advance(w, 7000), 1);
    expect_previous(w, 0, 0, 0);

    /* now = 7000: previous is (5000, 6000], current (6000, 7000] */
    expect_int("add at now - 2L", add(w, 2, 5000, "R2", "US-TN"), 0);
    expect_int("add at now - 2L + 1", add(w, 3, 5001, "R3", "US-TN"), 1);
    expect_previous(w, 1, 1, 1);
    expect_current(w, 0, 0, 0);
    expect_int("add at now - L", add(w, 4, 6000, "R4", "US-GA"), 1);
    expect_previous(w, 2, 2, 2);
    expect_current(w, 0, 0, 0);
    expect_int("add at now - L + 1", add(w, 5, 6001, "R5", "US-GA"), 1);
    expect_previous(w, 2, 2, 2);
    expect_current(w, 1, 1, 1);
    expect_jurisdictions(w, "US-GA:1");
    window_free(w);
}
END_TEST

/* Facts expire in time order, not in the order they came. */
START_TEST(test_out_of_order)
{
    struct window *w = window_new(1000, 0);
    add(w, 1, 900, "R1", "US-TN");
    add(w, 2, 500, "R2", "US-TN");
    add(w, 3, 700, "R3", "US-GA");
    add(w, 4, 100, "R4", "US-AL");
    expect_int("now is the latest time", window_now(w), 900);
    expect_current(w, 4, 4, 3);
    expect_int("next expiry is the oldest fact's", window_next_expiry(w), 1100);

    expect_int("advance to 1100", window_advance(w, 1100), 1);
    expect_current(w, 3, 3, 2);
    expect_jurisdictions(w, "US-GA:1 US-TN:2");
    expect_int("advance to 1499", window_advance(w, 1499), 0);
    expect_int("advance to 1500", window_advance(w, 1500), 1);
    expect_current(w, 2, 2, 2);
    expect_int("advance to 1700", window_advance(w, 1700), 1);
    expect_current(w, 1, 1, 1);
    expect_jurisdictions(w, "US-TN:1");
    expect_int("advance to 1899", window_advance(w, 1899), 0);
    expect_int("advance to 1900", window_advance(w, 1900), 1);
    expect_current(w, 0, 0, 0);

    /* a later add expires the older facts itself */
    add(w, 5, 2000, "R5", "US-TN");
    add(w, 6, 1500, "R6", "US-TN");
    add(w, 7, 1200, "R7", "US-TN");
    expect_current(w, 3, 3, 1);
    expect_int("add far ahead", add(w, 8, 2600, "R8", "US-GA"), 1);
    expect_current(w, 2, 2, 2);
    expect_int("one big jump drops everything", window_advance(w, 1000000), 2);
    expect_current(w, 0, 0, 0);
    window_free(w);
}
END_TEST

START_TEST(test_late_facts_ignored)
{
    struct window *w = window_new(1000, 0);
    add(w, 1, 10000, "R1", "US-TN");
    expect_int("late by more than L", add(w, 2, 3000, "R2", "US-GA"), 0);
    expect_int("late by exactly L", add(w, 3, 9000, "R3", "US-GA"), 0);
    expect_current(w, 1, 1, 1);
    expect_previous(w, 0, 0, 0);
    expect_jurisdictions(w, "US-TN:1");
    expect_int("now unchanged", window_now(w), 10000);
    expect_int("an ignored fact is not held", window_remove(w, 2), 0);
    window_free(w);

    /* keep_previous holds up to 2L back, no further */
    w = window_new(1000, 1);
    add(w, 1, 10000, "R1", "US-TN");
    expect_int("late into the previous period", add(w, 2, 8500, "R2", "US-GA"), 1);
    expect_int("late beyond 2L", add(w, 3, 8000, "R3", "US-GA"), 0);
    expect_current(w, 1, 1, 1);
    expect_previous(w, 1, 1, 1);
    window_free(w);
}
END_TEST

/* Retraction updates every count: a review keeps counting while it has facts
 * left and stops with its last one. */
START_TEST(test_remove)
{
    struct window *w = window_new(1000, 0);
    const char *const le[WINDOW_BREAKDOWNS] = {"suid", "0-3", "law_enforcement", "high"};
    const char *const med[WINDOW_BREAKDOWNS] = {"suid", "0-3", "medical", "high"};
    const char *const le2[WINDOW_BREAKDOWNS] = {"drowning", "4-7", "law_enforcement", "low"};
    window_add(w, 1, 100, "R1", "US-TN", le);
    window_add(w, 2, 110, "R1", "US-TN", med);
    window_add(w, 3, 120, "R2", "US-GA", le2);
    expect_current(w, 3, 2, 2);
    expect_breakdown(w, WINDOW_PARTNER, "law_enforcement:2 medical:1");
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:1");

    expect_int("remove a held fact", window_remove(w, 1), 1);
    expect_current(w, 2, 2, 2);
    expect_jurisdictions(w, "US-GA:1 US-TN:1");
    expect_breakdown(w, WINDOW_PARTNER, "law_enforcement:1 medical:1");
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:1");
    expect_int("remove it again", window_remove(w, 1), 0);
    expect_current(w, 2, 2, 2);

    expect_int("remove the review's last fact", window_remove(w, 2), 1);
    expect_current(w, 1, 1, 1);
    expect_jurisdictions(w, "US-GA:1");
    expect_breakdown(w, WINDOW_PARTNER, "law_enforcement:1");
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1");
    expect_breakdown(w, WINDOW_PRIORITY, "low:1");
    expect_int("remove an unknown id", window_remove(w, 99), 0);
    expect_int("next expiry follows removal", window_next_expiry(w), 1120);

    expect_int("expire the last", window_advance(w, 5000), 1);
    expect_int("remove an expired fact", window_remove(w, 3), 0);
    expect_current(w, 0, 0, 0);
    window_free(w);
}
END_TEST

/* Removing from the middle of the time order keeps expiry right. */
START_TEST(test_remove_keeps_order)
{
    struct window *w = window_new(1000, 0);
    for (int i = 0; i < 20; i++) {
        char review[16];
        snprintf(review, sizeof(review), "R%d", i);
        add(w, i, 1000 + (i * 7) % 20 * 10, review, "US-TN");
    }
    /* times 1000..1190 step 10; remove those at 1050..1140 */
    for (int i = 0; i < 20; i++) {
        int64_t t = 1000 + (i * 7) % 20 * 10;
        if (t >= 1050 && t < 1150) expect_int("remove", window_remove(w, i), 1);
    }
    expect_current(w, 10, 10, 1);
    expect_int("next expiry", window_next_expiry(w), 2000);
    expect_int("advance to 2049", window_advance(w, 2049), 5);
    expect_int("next expiry skips removed facts", window_next_expiry(w), 2150);
    expect_int("advance to 2149", window_advance(w, 2149), 0);
    expect_int("advance to 2190", window_advance(w, 2190), 5);
    expect_current(w, 0, 0, 0);
    window_free(w);
}
END_TEST

START_TEST(test_readd_after_remove)
{
    struct window *w = window_new(1000, 0);
    add(w, 1, 100, "R1", "US-TN");
    expect_int("same id while held", add(w, 1, 150, "R9", "US-GA"), 0);
    expect_current(w, 1, 1, 1);
    expect_jurisdictions(w, "US-TN:1");

    expect_int("remove", window_remove(w, 1), 1);
    expect_current(w, 0, 0, 0);
    expect_int("re-add the same fact", add(w, 1, 100, "R1", "US-TN"), 1);
    expect_current(w, 1, 1, 1);
    expect_jurisdictions(w, "US-TN:1");

    /* an amended review: old facts retracted, new ones added */
    expect_int("retract", window_remove(w, 1), 1);
    expect_int("amended fact", add(w, 1, 400, "R1", "US-GA"), 1);
    expect_int("another amended fact", add(w, 2, 400, "R1", "US-GA"), 1);
    expect_current(w, 2, 1, 1);
    expect_jurisdictions(w, "US-GA:1");
    expect_int("the re-added fact has its new time", window_next_expiry(w), 1400);
    expect_int("advance to 1399", window_advance(w, 1399), 0);
    expect_int("advance to 1400", window_advance(w, 1400), 2);
    window_free(w);
}
END_TEST

START_TEST(test_advance_never_backward)
{
    struct window *w = window_new(1000, 0);
    expect_int("advance", window_advance(w, 1000), 0);
    expect_int("advance back", window_advance(w, 500), 0);
    expect_int("now stays", window_now(w), 1000);
    add(w, 1, 600, "R1", "US-TN");
    expect_int("now stays after an older add", window_now(w), 1000);
    expect_int("far back", window_advance(w, -5), 0);
    expect_current(w, 1, 1, 1);
    expect_int("advance to 1600", window_advance(w, 1600), 1);
    expect_int("advance back to 0", window_advance(w, 0), 0);
    expect_int("now stays", window_now(w), 1600);
    expect_current(w, 0, 0, 0);
    expect_int("an expired time stays expired", add(w, 2, 600, "R1", "US-TN"), 0);
    window_free(w);
}
END_TEST

/* Times at the ends of int64 do not overflow into the wrong period. */
START_TEST(test_extreme_times)
{
    struct window *w = window_new(1000, 1);
    expect_int("add", add(w, 1, INT64_MIN + 1, "R1", "US-TN"), 1);
    expect_int("next expiry", window_next_expiry(w), INT64_MIN + 1001);
    expect_int("advance across the whole range", window_advance(w, INT64_MAX), 1);
    expect_int("add near the end", add(w, 2, INT64_MAX - 10, "R2", "US-TN"), 1);
    expect_current(w, 1, 1, 1);
    expect_int("next expiry saturates", window_next_expiry(w), INT64_MAX);
    window_free(w);

    w = window_new(INT64_MAX, 1);
    add(w, 1, -5, "R1", "US-TN");
    add(w, 2, 0, "R2", "US-GA");
    expect_int("advance", window_advance(w, INT64_MAX), 0);
    expect_current(w, 0, 0, 0);
    expect_previous(w, 2, 2, 2);
    window_free(w);
}
END_TEST

START_TEST(test_keep_previous)
{
    struct window *w = window_new(100, 1);
    add(w, 1, 0, "R1", "US-TN");
    add(w, 2, 10, "R1", "US-TN");
    add(w, 3, 50, "R2", "US-GA");
    add(w, 4, 60, "R3", "US-GA");
    expect_current(w, 4, 3, 2);
    expect_previous(w, 0, 0, 0);

    expect_int("advance to 100", window_advance(w, 100), 0);
    expect_current(w, 3, 3, 2);
    expect_previous(w, 1, 1, 1);

    expect_int("advance to 150", window_advance(w, 150), 0);
    expect_current(w, 1, 1, 1);
    expect_previous(w, 3, 2, 2);
    expect_jurisdictions(w, "US-GA:1"); /* the current period only */

    add(w, 5, 120, "R4", "US-AL");
    expect_current(w, 2, 2, 2);
    expect_jurisdictions(w, "US-AL:1 US-GA:1");

    expect_int("advance to 200 drops the fact at 0", window_advance(w, 200), 1);
    expect_current(w, 1, 1, 1);
    expect_previous(w, 3, 3, 2);

    expect_int("remove from the previous period", window_remove(w, 3), 1);
    expect_previous(w, 2, 2, 2);
    expect_int("late add into the previous period", add(w, 6, 90, "R5", "US-AK"), 1);
    expect_previous(w, 3, 3, 3);
    expect_int("late add beyond it", add(w, 7, 0, "R6", "US-AK"), 0);
    expect_previous(w, 3, 3, 3);
    expect_current(w, 1, 1, 1);

    expect_int("advance to 400 drops all", window_advance(w, 400), 4);
    expect_current(w, 0, 0, 0);
    expect_previous(w, 0, 0, 0);
    window_free(w);

    /* without keep_previous, nothing is ever previous */
    w = window_new(100, 0);
    add(w, 1, 0, "R1", "US-TN");
    expect_int("dropped at L", window_advance(w, 100), 1);
    expect_previous(w, 0, 0, 0);
    expect_int("late into what would be previous", add(w, 2, 0, "R2", "US-TN"), 0);
    window_free(w);
}
END_TEST

START_TEST(test_breakdowns)
{
    struct window *w = window_new(1000, 0);
    const char *const f1[] = {"suid", "0-3", "law_enforcement", "medium"};
    const char *const f2[] = {"suid", "0-3", "medical", "high"};
    const char *const f3[] = {"drowning", "4-7", "law_enforcement", NULL};
    const char *const f4[] = {"suid", "0-3", NULL, "low"};
    const char *const f5[] = {"suid", "0-3", NULL, "low"};
    window_add(w, 1, 100, "R1", "US-TN", f1);
    window_add(w, 2, 101, "R1", "US-TN", f2);
    window_add(w, 3, 102, "R2", "US-GA", f3);
    window_add(w, 4, 103, "R3", "US-GA", f4);
    window_add(w, 5, 104, "R3", "US-GA", f5);
    expect_current(w, 5, 3, 2);
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:2");
    expect_breakdown(w, WINDOW_AGE_BAND, "0-3:2 4-7:1");
    expect_breakdown(w, WINDOW_PARTNER, "law_enforcement:2 medical:1");
    expect_breakdown(w, WINDOW_PRIORITY, "high:1 low:1 medium:1");
    expect_jurisdictions(w, "US-GA:2 US-TN:1");

    /* no breakdown values at all */
    window_add(w, 6, 105, "R4", "US-AL", NULL);
    expect_current(w, 6, 4, 3);
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:2");
    expect_jurisdictions(w, "US-AL:1 US-GA:2 US-TN:1");

    expect_breakdown(w, -1, "");
    expect_breakdown(w, WINDOW_BREAKDOWNS, "");

    /* values are per review: expiry of R1's facts drops medical and high */
    expect_int("advance to 1101", window_advance(w, 1101), 2);
    expect_breakdown(w, WINDOW_PARTNER, "law_enforcement:1");
    expect_breakdown(w, WINDOW_PRIORITY, "low:1");
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:1");
    window_free(w);
}
END_TEST

/* The window keeps its own copies of the strings. */
START_TEST(test_strings_copied)
{
    struct window *w = window_new(1000, 0);
    char review[8], jur[8], cause[16];
    strcpy(review, "R1");
    strcpy(jur, "US-TN");
    strcpy(cause, "suid");
    const char *breakdown[WINDOW_BREAKDOWNS] = {cause, NULL, NULL, NULL};
    window_add(w, 1, 100, review, jur, breakdown);
    strcpy(review, "R2");
    strcpy(jur, "US-GA");
    strcpy(cause, "drowning");
    window_add(w, 2, 100, review, jur, breakdown);
    memset(review, 'x', sizeof(review) - 1);
    memset(jur, 'x', sizeof(jur) - 1);
    memset(cause, 'x', sizeof(cause) - 1);
    expect_current(w, 2, 2, 2);
    expect_jurisdictions(w, "US-GA:1 US-TN:1");
    expect_breakdown(w, WINDOW_CAUSE, "drowning:1 suid:1");
    window_free(w);
}
END_TEST

START_TEST(test_null_review_ignored)
{
    struct window *w = window_new(1000, 0);
    expect_int("NULL review key", window_add(w, 1, 100, NULL, "US-TN", NULL), 0);
    expect_current(w, 0, 0, 0);
    expect_int("now untouched", window_now(w), INT64_MIN);
    window_free(w);
}
END_TEST

/* Same operations in the same order give the same listings, and the listing
 * order does not depend on the order values came in. */
START_TEST(test_listing_order)
{
    static const char *const codes[] = {"US-WY", "US-AK", "US-MN", "US-AL", "US-TN", "US-GA"};
    struct window *a = window_new(1000, 0), *b = window_new(1000, 0);
    for (size_t i = 0; i < SN_ARRAY_LEN(codes); i++) {
        char review[16];
        snprintf(review, sizeof(review), "R%zu", i);
        add(a, (int64_t)i, 100, review, codes[i]);
        add(b, (int64_t)i, 100, review, codes[SN_ARRAY_LEN(codes) - 1 - i]);
    }
    expect_jurisdictions(a, "US-AK:1 US-AL:1 US-GA:1 US-MN:1 US-TN:1 US-WY:1");
    expect_jurisdictions(b, "US-AK:1 US-AL:1 US-GA:1 US-MN:1 US-TN:1 US-WY:1");
    window_free(a);
    window_free(b);
}
END_TEST

/* A long random history checked against a brute-force recomputation from a
 * model of every fact ever offered. */

#define DAY         (24LL * 3600 * 1000)
#define BIG_FACTS   200000
#define BIG_LENGTH  (90 * DAY)
#define BIG_SPAN    (3 * 365 * DAY)
#define NJUR        50
#define CHECK_EVERY 2000

static const char *const causes[] = {"abuse", "drowning", "firearm", "neglect", "suid", "vehicle"};
static const char *const age_bands[] = {"0-3", "12-17", "4-7", "8-11"};
static const char *const partners[] = {"child_welfare",   "courts",  "education",    "housing",
                                       "law_enforcement", "medical", "mental_health"};
static const char *const priorities[] = {"high", "low", "medium"};
static const char *const *const values_of[WINDOW_BREAKDOWNS] = {causes, age_bands, partners,
                                                                priorities};
static const int nvalues_of[WINDOW_BREAKDOWNS] = {
    (int)SN_ARRAY_LEN(causes), (int)SN_ARRAY_LEN(age_bands), (int)SN_ARRAY_LEN(partners),
    (int)SN_ARRAY_LEN(priorities)};

struct model_fact {
    int64_t id, time;
    int review, jur;
    int values[WINDOW_BREAKDOWNS]; /* -1 when absent */
    int accepted, removed;
};

struct model_review {
    size_t first, n; /* its facts, in model order */
    int jur, cause, age_band;
    int64_t time;
};

struct model {
    int keep_previous;
    int64_t now;
    struct model_fact *facts;
    size_t nfacts, cap;
    size_t *latest; /* fact id -> index of its latest accepted offer, SIZE_MAX if none */
    size_t nids;
    struct model_review *reviews;
    size_t nreviews;
    uint64_t rng;
    size_t late, dropped_at_ticks, previous_seen; /* what the history exercised */
};

static uint64_t rnd(struct model *m)
{
    /* xorshift64*: fixed seed, so the history is the same on every run */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 2685821657736338717ULL;
}

static int64_t rnd_below(struct model *m, int64_t n)
{
    return (int64_t)(rnd(m) % (uint64_t)n);
}

/* 0 current, 1 previous, 2 out, for a fact at t under the model's now. */
static int model_period(const struct model *m, int64_t t)
{
    int64_t age = m->now - t;
    if (age < BIG_LENGTH) return 0;
    if (m->keep_previous && age < 2 * BIG_LENGTH) return 1;
    return 2;
}

static int model_held(const struct model *m, const struct model_fact *f)
{
    return f->accepted && !f->removed && model_period(m, f->time) < 2;
}

static void review_name(char *buf, size_t len, int review)
{
    snprintf(buf, len, "CIR-%06d", review);
}

static void jur_name(char *buf, size_t len, int jur)
{
    snprintf(buf, len, "US-%02d", jur);
}

/* Offers one fact to the window and to the model, checking the window's answer. */
static void big_add(struct window *w, struct model *m, int64_t id, int64_t t, int review, int jur,
                    const int values[WINDOW_BREAKDOWNS])
{
    if (m->nfacts == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->facts = xrealloc(m->facts, m->cap * sizeof(*m->facts));
    }
    struct model_fact *f = &m->facts[m->nfacts];
    *f = (struct model_fact){.id = id, .time = t, .review = review, .jur = jur};
    memcpy(f->values, values, sizeof(f->values));

    if (t > m->now) m->now = t;
    size_t prior = m->latest[id];
    int duplicate = prior != SIZE_MAX && model_held(m, &m->facts[prior]);
    int expected = !duplicate && model_period(m, t) < 2;

    char rname[32], jname[16];
    review_name(rname, sizeof(rname), review);
    jur_name(jname, sizeof(jname), jur);
    const char *breakdown[WINDOW_BREAKDOWNS];
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
        breakdown[d] = values[d] < 0 ? NULL : values_of[d][values[d]];
    int got = window_add(w, id, t, rname, jname, breakdown);
    ck_assert_msg(got == expected,
                  "add of fact %lld at %lld (now %lld, duplicate %d): expected %d, got %d",
                  (long long)id, (long long)t, (long long)m->now, duplicate, expected, got);
    f->accepted = expected;
    if (!duplicate && !expected) m->late++;
    if (expected) m->latest[id] = m->nfacts;
    m->nfacts++;
}

static void big_remove(struct window *w, struct model *m, size_t index)
{
    struct model_fact *f = &m->facts[index];
    int expected = m->latest[f->id] == index && model_held(m, f);
    int got = window_remove(w, f->id);
    ck_assert_msg(got == expected, "remove of fact %lld at %lld (now %lld): expected %d, got %d",
                  (long long)f->id, (long long)f->time, (long long)m->now, expected, got);
    if (f->accepted) f->removed = 1;
}

struct pair {
    int value, review;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->value != y->value) return x->value < y->value ? -1 : 1;
    return (x->review > y->review) - (x->review < y->review);
}

/* Distinct reviews per value, rendered like struct listing, from pairs; value
 * names sort as their indexes do, so the listing comes out sorted. */
static size_t render_pairs(struct pair *pairs, size_t n, char *out, size_t len,
                           void (*name)(char *, size_t, int, int), int dim)
{
    qsort(pairs, n, sizeof(*pairs), pair_cmp);
    size_t used = 0, values = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        size_t j = i, reviews = 0;
        for (; j < n && pairs[j].value == pairs[i].value; j++)
            if (j == i || pairs[j].review != pairs[j - 1].review) reviews++;
        char vname[32];
        name(vname, sizeof(vname), dim, pairs[i].value);
        used +=
            (size_t)snprintf(out + used, len - used, "%s%s:%zu", used ? " " : "", vname, reviews);
        ck_assert_msg(used < len, "expected listing too long for the test");
        values++;
        i = j;
    }
    return values;
}

static void value_name(char *buf, size_t len, int dim, int value)
{
    if (dim < 0)
        jur_name(buf, len, value);
    else
        snprintf(buf, len, "%s", values_of[dim][value]);
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static size_t distinct_ints(int *v, size_t n)
{
    qsort(v, n, sizeof(*v), int_cmp);
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] != v[i - 1]) d++;
    return d;
}

/* Recomputes everything from the model and compares with the window. */
static void big_check(const struct window *w, struct model *m, const char *when)
{
    expect_int("now", window_now(w), m->now);
    size_t n = m->nfacts;
    int *reviews[2] = {xmalloc(n * sizeof(int)), xmalloc(n * sizeof(int))};
    struct pair *jur_pairs[2] = {xmalloc(n * sizeof(struct pair)),
                                 xmalloc(n * sizeof(struct pair))};
    struct pair *value_pairs[WINDOW_BREAKDOWNS];
    size_t nvalue_pairs[WINDOW_BREAKDOWNS] = {0};
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
        value_pairs[d] = xmalloc(n * sizeof(struct pair));
    size_t count[2] = {0, 0};
    int64_t next = INT64_MAX;

    for (size_t i = 0; i < n; i++) {
        const struct model_fact *f = &m->facts[i];
        if (!model_held(m, f)) continue;
        int p = model_period(m, f->time);
        int64_t expiry = f->time + (p == 0 ? BIG_LENGTH : 2 * BIG_LENGTH);
        if (expiry < next) next = expiry;
        reviews[p][count[p]] = f->review;
        jur_pairs[p][count[p]] = (struct pair){f->jur, f->review};
        count[p]++;
        if (p != 0) continue;
        for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
            if (f->values[d] >= 0)
                value_pairs[d][nvalue_pairs[d]++] = (struct pair){f->values[d], f->review};
    }

    static char want[65536];
    struct listing *got = xmalloc(sizeof(*got));
    struct window_counts counts[2] = {window_current(w), window_previous(w)};
    m->previous_seen += counts[1].facts;
    for (int p = 0; p < 2; p++) {
        size_t facts = count[p];
        size_t distinct_reviews = distinct_ints(reviews[p], facts);
        size_t distinct_jurs =
            render_pairs(jur_pairs[p], facts, want, sizeof(want), value_name, -1);
        ck_assert_msg(counts[p].facts == facts && counts[p].reviews == distinct_reviews &&
                          counts[p].jurisdictions == distinct_jurs,
                      "%s, %s period at now %lld:\n expected facts=%zu reviews=%zu "
                      "jurisdictions=%zu\n      got facts=%zu reviews=%zu jurisdictions=%zu",
                      when, p ? "previous" : "current", (long long)m->now, facts, distinct_reviews,
                      distinct_jurs, counts[p].facts, counts[p].reviews, counts[p].jurisdictions);
        if (p != 0) continue;
        got->len = 0;
        got->text[0] = '\0';
        window_jurisdictions(w, listing_add, got);
        ck_assert_msg(strcmp(got->text, want) == 0,
                      "%s, jurisdictions:\n expected %s\n      got %s", when, want, got->text);
    }
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++) {
        render_pairs(value_pairs[d], nvalue_pairs[d], want, sizeof(want), value_name, d);
        got->len = 0;
        got->text[0] = '\0';
        window_breakdown(w, d, listing_add, got);
        ck_assert_msg(strcmp(got->text, want) == 0, "%s, breakdown %d:\n expected %s\n      got %s",
                      when, d, want, got->text);
    }
    expect_int("next expiry", window_next_expiry(w), next);

    free(got);
    for (int p = 0; p < 2; p++) {
        free(reviews[p]);
        free(jur_pairs[p]);
    }
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
        free(value_pairs[d]);
}

/* Advances both and checks the number of facts dropped against the model. */
static void big_advance(struct window *w, struct model *m, int64_t to)
{
    int64_t before = m->now;
    if (to > m->now) m->now = to;
    size_t expected = 0;
    for (size_t i = 0; i < m->nfacts; i++) {
        const struct model_fact *f = &m->facts[i];
        if (!f->accepted || f->removed) continue;
        int64_t age_before = before - f->time;
        int held_before = age_before < (m->keep_previous ? 2 : 1) * BIG_LENGTH;
        if (held_before && !model_held(m, f)) expected++;
    }
    size_t got = window_advance(w, to);
    m->dropped_at_ticks += got;
    ck_assert_msg(got == expected, "advance from %lld to %lld: expected %zu dropped, got %zu",
                  (long long)before, (long long)to, expected, got);
}

/* Offers a new version of review r: its facts at time t with fresh ids, or
 * with the ids of its current version (a re-add after retraction). */
static void big_offer_review(struct window *w, struct model *m, int r, int64_t t, int64_t *next_id,
                             int reuse_ids)
{
    struct model_review *rv = &m->reviews[r];
    size_t old_first = rv->first;
    size_t n = reuse_ids ? rv->n : (size_t)(1 + rnd_below(m, 5));
    rv->first = m->nfacts;
    rv->n = n;
    rv->time = t;
    for (size_t k = 0; k < n; k++) {
        int values[WINDOW_BREAKDOWNS] = {rv->cause, rv->age_band,
                                         rnd_below(m, 10) < 3 ? -1 : (int)rnd_below(m, 7),
                                         rnd_below(m, 10) < 1 ? -1 : (int)rnd_below(m, 3)};
        int64_t id = reuse_ids ? m->facts[old_first + k].id : (*next_id)++;
        big_add(w, m, id, t, r, rv->jur, values);
    }
}

START_TEST(test_large_history_against_brute_force)
{
    int keep_previous = _i;
    struct window *w = window_new(BIG_LENGTH, keep_previous);
    struct model m = {
        .keep_previous = keep_previous, .now = INT64_MIN, .rng = 0x9e3779b97f4a7c15ULL};
    m.nids = BIG_FACTS * 2;
    m.latest = xmalloc(m.nids * sizeof(*m.latest));
    for (size_t i = 0; i < m.nids; i++)
        m.latest[i] = SIZE_MAX;
    m.reviews = xcalloc(BIG_FACTS, sizeof(*m.reviews));

    int64_t next_id = 0, start = 1700000000000LL;
    size_t checks = 0, last_check = 0, amended = 0, duplicates = 0;
    while (m.nfacts < BIG_FACTS) {
        /* Reviews finalize in roughly time order; some arrive late, a few
         * later than any window holds. */
        int r = (int)m.nreviews++;
        int64_t clock = start + (int64_t)r * BIG_SPAN / (BIG_FACTS / 3);
        int64_t lateness = rnd_below(&m, 100) < 85   ? rnd_below(&m, DAY)
                           : rnd_below(&m, 100) < 67 ? rnd_below(&m, 100 * DAY)
                                                     : rnd_below(&m, 250 * DAY);
        struct model_review *rv = &m.reviews[r];
        rv->jur = (int)rnd_below(&m, NJUR);
        rv->cause = (int)rnd_below(&m, (int64_t)nvalues_of[WINDOW_CAUSE]);
        rv->age_band = (int)rnd_below(&m, (int64_t)nvalues_of[WINDOW_AGE_BAND]);
        big_offer_review(w, &m, r, clock - lateness, &next_id, 0);

        /* An amendment of a recent review: retract its facts, then add the
         * new version, either the same facts again or new ones later. */
        if (r > 10 && rnd_below(&m, 100) < 4) {
            int old = r - 1 - (int)rnd_below(&m, r < 3000 ? r : 3000);
            struct model_review *ov = &m.reviews[old];
            for (size_t k = 0; k < ov->n; k++)
                big_remove(w, &m, ov->first + k);
            int reuse = rnd_below(&m, 2) == 0;
            big_offer_review(w, &m, old, reuse ? ov->time : ov->time + rnd_below(&m, 10 * DAY),
                             &next_id, reuse);
            amended++;
        }
        /* The same fact offered twice is held once. */
        if (rnd_below(&m, 100) < 2) {
            struct model_fact f = m.facts[m.nfacts - 1];
            big_add(w, &m, f.id, f.time, f.review, f.jur, f.values);
            duplicates++;
        }
        /* A wall-clock tick now and then, a little ahead of event time. */
        if (rnd_below(&m, 100) < 3) {
            int64_t tick = clock + rnd_below(&m, 2 * DAY);
            if (tick > m.now) m.now = tick;
            window_advance(w, tick);
        }

        if (m.nfacts - last_check >= CHECK_EVERY) {
            last_check = m.nfacts;
            char when[64];
            snprintf(when, sizeof(when), "after %zu facts", m.nfacts);
            big_check(w, &m, when);
            big_advance(w, &m, clock + rnd_below(&m, 3 * DAY));
            big_check(w, &m, "after a tick");
            checks++;
        }
    }
    ck_assert_msg(m.nfacts <= m.nids, "ran out of model ids");
    ck_assert_msg(checks >= 90, "expected at least 90 checkpoints, got %zu", checks);
    ck_assert_msg(amended > 1000 && duplicates > 1000,
                  "the history did not exercise amendments (%zu) and duplicates (%zu)", amended,
                  duplicates);

    ck_assert_msg(m.late > 1000 && m.dropped_at_ticks > 1000,
                  "the history did not exercise late facts (%zu) and expiry by ticks (%zu)", m.late,
                  m.dropped_at_ticks);
    ck_assert_msg((m.previous_seen > 0) == keep_previous,
                  "keep_previous=%d but the previous period held %zu facts over the checks",
                  keep_previous, m.previous_seen);
    /* The window held a window's worth, not the history. */
    struct window_counts c = window_current(w);
    ck_assert_msg(c.facts > 1000 && c.facts < BIG_FACTS / 4,
                  "current period holds %zu facts, expected a 90-day share of %d", c.facts,
                  BIG_FACTS);

    /* Drain: far ahead, everything goes. */
    big_advance(w, &m, m.now + 10 * BIG_LENGTH);
    big_check(w, &m, "after draining");
    expect_current(w, 0, 0, 0);
    expect_previous(w, 0, 0, 0);

    free(m.facts);
    free(m.latest);
    free(m.reviews);
    window_free(w);
}
END_TEST

/* Tagged facts (the engine's improvement opportunities) are counted apart,
 * through every move: add, previous period, drop, remove. */
START_TEST(test_tagged_counts)
{
    struct window *w = window_new(10, 1);
    ck_assert_int_eq(window_add_tagged(w, 1, 0, "r1", "AA", NULL, 1), 1);
    ck_assert_int_eq(window_add_tagged(w, 2, 0, "r1", "AA", NULL, 0), 1);
    ck_assert_int_eq(window_add_tagged(w, 3, 5, "r2", "BB", NULL, 1), 1);
    ck_assert_uint_eq(window_current(w).tagged, 2);
    ck_assert_uint_eq(window_current(w).facts, 3);
    window_advance(w, 10); /* facts 1, 2 move to the previous period */
    ck_assert_uint_eq(window_current(w).tagged, 1);
    ck_assert_uint_eq(window_previous(w).tagged, 1);
    ck_assert_int_eq(window_remove(w, 3), 1);
    ck_assert_uint_eq(window_current(w).tagged, 0);
    window_advance(w, 20); /* dropped */
    ck_assert_uint_eq(window_previous(w).tagged, 0);
    ck_assert_uint_eq(window_previous(w).facts, 0);
    window_free(w);
}
END_TEST

/* ---- the caller's ids: the same answers as the window's own strings ---- */

static const char *const NAMED[] = {"AA",      "BB",       "CC",   "DD",  "suid",
                                    "fire",    "drowning", "0-3",  "4-7", "law_enforcement",
                                    "medical", "housing",  "high", "low"};

static const char *named_text(uint32_t id, void *arg)
{
    (void)arg;
    return NAMED[id];
}

static void append_listing(const char *value, size_t reviews, void *arg)
{
    char *out = arg;
    size_t len = strlen(out);
    snprintf(out + len, 4096 - len, "%s=%zu ", value, reviews);
}

/* Everything a window answers, as text. */
static void window_text(const struct window *w, char out[4096])
{
    struct window_counts c = window_current(w), p = window_previous(w);
    snprintf(out, 4096, "%zu/%zu/%zu/%zu %zu/%zu/%zu/%zu | ", c.facts, c.reviews, c.jurisdictions,
             c.tagged, p.facts, p.reviews, p.jurisdictions, p.tagged);
    window_jurisdictions(w, append_listing, out);
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++) {
        strcat(out, "| ");
        window_breakdown(w, d, append_listing, out);
    }
}

/* Random adds, removes and advances through a window with its own strings
 * and one with the caller's ids, where the jurisdiction, cause and age band
 * are counted per review: after every step both answer the same. */
START_TEST(test_named_ids_agree_with_strings)
{
    struct window *plain = window_new(50, 1);
    struct window *named =
        window_new_named(50, 1, named_text, NULL,
                         WINDOW_PER_REVIEW_JURISDICTION | WINDOW_PER_REVIEW(WINDOW_CAUSE) |
                             WINDOW_PER_REVIEW(WINDOW_AGE_BAND));
    enum { REVIEWS = 40, FACTS = 3000 };
    uint32_t slots[FACTS + 1];
    int held[FACTS + 1];
    memset(held, 0, sizeof(held));
    uint64_t x = 12345;
    int64_t now = 0;
    for (int64_t id = 1; id <= FACTS; id++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned r = (unsigned)(x >> 33);
        int review = (int)(r % REVIEWS);
        /* per review: jurisdiction, cause, age band fixed; partner, priority vary */
        uint32_t ids[WINDOW_BREAKDOWNS] = {4 + (uint32_t)review % 3, 7 + (uint32_t)review % 2,
                                           9 + (r >> 8) % 3, 12 + (r >> 10) % 2};
        if ((r >> 12) % 4 == 0) ids[WINDOW_PARTNER] = WINDOW_NO_ID;
        uint32_t jurisdiction = (uint32_t)review % 4;
        const char *texts[WINDOW_BREAKDOWNS];
        for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
            texts[d] = ids[d] == WINDOW_NO_ID ? NULL : NAMED[ids[d]];
        char key[16];
        snprintf(key, sizeof(key), "r%d", review);
        int64_t t = now - (int64_t)((r >> 14) % 120); /* some late, some too old */
        int tagged = (r >> 20) & 1;
        int a = window_add_tagged(plain, id, t, key, NAMED[jurisdiction], texts, tagged);
        slots[id] = window_add_ids(named, id, t, (uint32_t)review, jurisdiction, ids, tagged);
        ck_assert_int_eq(a, slots[id] != WINDOW_NO_ID);
        held[id] = a;
        if ((r >> 22) % 5 == 0) {
            /* retract an earlier fact, held or expired */
            int64_t old = 1 + (int64_t)((r >> 3) % (uint64_t)id);
            int removed = window_remove(plain, old);
            ck_assert_int_eq(
                window_remove_slot(named, held[old] ? slots[old] : 0, held[old] ? old : -1),
                held[old] && removed);
            if (removed) held[old] = 0;
        }
        if ((r >> 25) % 3 == 0) {
            now += (r >> 27) % 4;
            window_advance(plain, now);
            window_advance(named, now);
        }
        char a_text[4096], b_text[4096];
        window_text(plain, a_text);
        window_text(named, b_text);
        ck_assert_msg(strcmp(a_text, b_text) == 0, "after fact %lld:\nstrings: %s\nids:     %s",
                      (long long)id, a_text, b_text);
    }
    window_free(plain);
    window_free(named);
}
END_TEST

static Suite *window_suite(void)
{
    Suite *s = suite_create("window");
    TCase *tc = tcase_create("window");
    tcase_add_test(tc, test_new_and_empty);
    tcase_add_test(tc, test_distinct_counts);
    tcase_add_test(tc, test_expiry_boundary);
    tcase_add_test(tc, test_expiry_boundary_previous);
    tcase_add_test(tc, test_out_of_order);
    tcase_add_test(tc, test_late_facts_ignored);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_remove_keeps_order);
    tcase_add_test(tc, test_readd_after_remove);
    tcase_add_test(tc, test_advance_never_backward);
    tcase_add_test(tc, test_extreme_times);
    tcase_add_test(tc, test_keep_previous);
    tcase_add_test(tc, test_breakdowns);
    tcase_add_test(tc, test_strings_copied);
    tcase_add_test(tc, test_null_review_ignored);
    tcase_add_test(tc, test_listing_order);
    tcase_add_test(tc, test_tagged_counts);
    tcase_add_test(tc, test_named_ids_agree_with_strings);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("history");
    tcase_set_timeout(big, 300); /* correctness only; the brute force is the slow part */
    tcase_add_loop_test(big, test_large_history_against_brute_force, 0, 2);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(window_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
