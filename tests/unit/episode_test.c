/* episode: the revisions of a notice episode from the levels its window reaches. */
#include <check.h>
#include <stdlib.h>

#include "episode.h"

#define HOUR (3600 * 1000LL)
#define DAY  (24 * HOUR)

static const struct episode_policy policy = {7 * DAY, 30 * DAY};

/* step and check the status, naming both on failure */
#define STEP(e, level, reviews, jurisdictions, now, want)                                          \
    do {                                                                                           \
        enum revision_status got_ =                                                                \
            episode_step((e), &policy, (level), (reviews), (jurisdictions), (now));                \
        ck_assert_msg(got_ == (want), "at %lld ms, level %d: expected %s, got %s",                 \
                      (long long)(now), (level), revision_status_name(want),                       \
                      revision_status_name(got_));                                                 \
    } while (0)

START_TEST(test_nothing_below_the_lowest_level)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, -1, 2, 1, 0, REVISION_NONE);
    STEP(&e, -1, 4, 2, DAY, REVISION_NONE);
    ck_assert_int_eq(e.active, 0);
    ck_assert_int_eq(e.revision, 0);
}
END_TEST

START_TEST(test_issue_then_escalate_at_once)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, 0, 5, 3, 10 * DAY, REVISION_ISSUED);
    ck_assert_int_eq(e.revision, 1);
    ck_assert_int_eq(e.level, 0);
    /* an escalation does not wait for repeat_interval */
    STEP(&e, 1, 10, 5, 10 * DAY + HOUR, REVISION_ESCALATED);
    ck_assert_int_eq(e.revision, 2);
    ck_assert_int_eq(e.level, 1);
    ck_assert_uint_eq(e.reviews, 10);
    ck_assert_uint_eq(e.jurisdictions, 5);
}
END_TEST

START_TEST(test_updates_at_most_every_repeat_interval_and_only_on_change)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, 0, 5, 3, 0, REVISION_ISSUED);
    STEP(&e, 0, 6, 3, DAY, REVISION_NONE);        /* changed, but too soon */
    STEP(&e, 0, 6, 3, 7 * DAY, REVISION_UPDATED); /* repeat_interval reached */
    ck_assert_int_eq(e.revision, 2);
    ck_assert_uint_eq(e.reviews, 6);
    STEP(&e, 0, 6, 3, 20 * DAY, REVISION_NONE);        /* nothing changed: no update */
    STEP(&e, 0, 7, 4, 20 * DAY + 1, REVISION_UPDATED); /* changed, interval long past */
    ck_assert_int_eq(e.revision, 3);
}
END_TEST

START_TEST(test_a_lower_level_still_held_is_an_update)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, 1, 10, 5, 0, REVISION_ISSUED);
    ck_assert_int_eq(e.level, 1);
    STEP(&e, 0, 7, 4, DAY, REVISION_NONE);
    STEP(&e, 0, 7, 4, 8 * DAY, REVISION_UPDATED);
    ck_assert_int_eq(e.level, 0);
}
END_TEST

START_TEST(test_resolve_only_after_resolve_after_without_flapping)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, 0, 5, 3, 0, REVISION_ISSUED);
    STEP(&e, -1, 4, 3, 10 * DAY, REVISION_NONE);       /* below: the clock starts */
    STEP(&e, -1, 4, 3, 39 * DAY, REVISION_NONE);       /* 29 days below */
    STEP(&e, 0, 5, 3, 39 * DAY + HOUR, REVISION_NONE); /* back up: no flap, clock reset */
    ck_assert_int_eq(e.active, 1);
    STEP(&e, -1, 4, 3, 41 * DAY, REVISION_NONE);     /* below again: a new clock */
    STEP(&e, -1, 4, 3, 70 * DAY, REVISION_NONE);     /* 29 days */
    STEP(&e, -1, 3, 2, 71 * DAY, REVISION_RESOLVED); /* 30 days */
    ck_assert_int_eq(e.active, 0);
    ck_assert_int_eq(e.revision, 2);
    ck_assert_uint_eq(e.reviews, 3);
}
END_TEST

START_TEST(test_a_new_episode_after_resolution_counts_from_1)
{
    struct episode e;
    episode_init(&e);
    STEP(&e, 0, 5, 3, 0, REVISION_ISSUED);
    STEP(&e, -1, 1, 1, DAY, REVISION_NONE);
    STEP(&e, -1, 1, 1, 31 * DAY, REVISION_RESOLVED);
    STEP(&e, -1, 1, 1, 40 * DAY, REVISION_NONE); /* resolved stays quiet */
    STEP(&e, 0, 5, 3, 50 * DAY, REVISION_ISSUED);
    ck_assert_int_eq(e.revision, 1);
}
END_TEST

START_TEST(test_same_inputs_same_revisions)
{
    /* determinism: the replay of a sequence gives the same statuses */
    static const struct {
        int level;
        size_t reviews;
        int64_t at;
    } seq[] = {{-1, 1, 0},        {0, 5, DAY},       {0, 6, 2 * DAY},   {1, 10, 3 * DAY},
               {1, 11, 11 * DAY}, {-1, 2, 20 * DAY}, {-1, 2, 50 * DAY}, {0, 5, 60 * DAY}};
    enum revision_status first[8], second[8];
    for (int pass = 0; pass < 2; pass++) {
        struct episode e;
        episode_init(&e);
        for (int i = 0; i < 8; i++) {
            enum revision_status st =
                episode_step(&e, &policy, seq[i].level, seq[i].reviews, 3, seq[i].at);
            (pass ? second : first)[i] = st;
        }
    }
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(first[i], second[i]);
    ck_assert_int_eq(first[1], REVISION_ISSUED);
    ck_assert_int_eq(first[3], REVISION_ESCALATED);
    ck_assert_int_eq(first[4], REVISION_UPDATED);
    ck_assert_int_eq(first[6], REVISION_RESOLVED);
    ck_assert_int_eq(first[7], REVISION_ISSUED);
}
END_TEST

static Suite *episode_suite(void)
{
    Suite *s = suite_create("episode");
    TCase *tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_nothing_below_the_lowest_level);
    tcase_add_test(tc, test_issue_then_escalate_at_once);
    tcase_add_test(tc, test_updates_at_most_every_repeat_interval_and_only_on_change);
    tcase_add_test(tc, test_a_lower_level_still_held_is_an_update);
    tcase_add_test(tc, test_resolve_only_after_resolve_after_without_flapping);
    tcase_add_test(tc, test_a_new_episode_after_resolution_counts_from_1);
    tcase_add_test(tc, test_same_inputs_same_revisions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(episode_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
