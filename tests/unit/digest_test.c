/* digest: the schedule grammar, fire times and periods in named zones across
 * daylight-saving changes (America/Chicago: 2026-03-08 and 2026-11-01;
 * Europe/Berlin: 2026-03-29 and 2026-10-25), weekly and cron schedules, and
 * the digest built from counts: privacy suppression, rankings, escaping. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "sn.h"

static int64_t utc(const char *text)
{
    struct tm tm = {0};
    ck_assert_msg(strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm) != NULL, "bad time %s", text);
    return (int64_t)timegm(&tm);
}

static const char *fmt(int64_t t)
{
    static char buf[4][32];
    static int i;
    i = (i + 1) % 4;
    if (t < 0) return "-1";
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf[i], sizeof(buf[i]), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf[i];
}

static struct digest_schedule parse_ok(const char *text)
{
    struct digest_schedule s;
    char err[256] = "";
    ck_assert_msg(digest_schedule_parse(text, &s, err, sizeof(err)) == SN_OK,
                  "expected \"%s\" to parse, got: %s", text, err);
    return s;
}

#define expect_next(s, from, want)                                                                 \
    do {                                                                                           \
        int64_t got_ = digest_next(&(s), utc(from));                                               \
        ck_assert_msg(got_ == utc(want), "next after %s: expected %s, got %s", (from), (want),     \
                      fmt(got_));                                                                  \
    } while (0)

#define expect_prev(s, from, want)                                                                 \
    do {                                                                                           \
        int64_t got_ = digest_prev(&(s), utc(from));                                               \
        ck_assert_msg(got_ == utc(want), "prev at %s: expected %s, got %s", (from), (want),        \
                      fmt(got_));                                                                  \
    } while (0)

START_TEST(test_grammar)
{
    static const char *const good[] = {
        "daily 07:00 America/Chicago",
        "DAILY 23:59 UTC",
        "weekly mon 07:30 Europe/Berlin",
        "weekly Sunday 00:00 Europe/Berlin",
        "cron \"0 7 * * 1\" America/Chicago",
        "cron \"*/15 9-17 * * mon-fri\" America/New_York",
        "cron \"0 0 1,15 jan-jun *\" UTC",
        "cron \"5 4 * * 7\" UTC",
        "cron \"0 0 29 2 *\" UTC",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(good); i++)
        parse_ok(good[i]);
    static const char *const bad[] = {
        "",
        "daily",
        "daily 7:00 America/Chicago",
        "daily 24:00 America/Chicago",
        "daily 07:60 America/Chicago",
        "daily 07:00",
        "daily 07:00 America/Chicag",
        "daily 07:00 ../../etc/passwd",
        "daily 07:00 /usr/share/zoneinfo/UTC",
        "weekly 07:00 UTC",
        "weekly someday 07:00 UTC",
        "cron 0 7 * * 1 UTC",
        "cron \"0 7 * *\" UTC",
        "cron \"0 7 * * 1 2\" UTC",
        "cron \"60 7 * * 1\" UTC",
        "cron \"0 24 * * 1\" UTC",
        "cron \"0 7 0 * *\" UTC",
        "cron \"0 7 * 13 *\" UTC",
        "cron \"0 7 * * 8\" UTC",
        "cron \"5-1 7 * * *\" UTC",
        "cron \"*/0 7 * * *\" UTC",
        "cron \"a 7 * * *\" UTC",
        "cron \"0 0 31 2 *\" UTC",
        "cron \"0 7 * * 1\" UTC extra",
        "hourly UTC",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        struct digest_schedule s;
        char err[256] = "";
        ck_assert_msg(digest_schedule_parse(bad[i], &s, err, sizeof(err)) == SN_ERR_INVAL,
                      "expected \"%s\" to be refused", bad[i]);
        ck_assert_msg(err[0], "a reason for \"%s\"", bad[i]);
    }
}
END_TEST

START_TEST(test_daily_chicago_dst)
{
    struct digest_schedule s = parse_ok("daily 07:00 America/Chicago");
    /* CST is UTC-6, CDT UTC-5; DST starts 2026-03-08 02:00 local */
    expect_next(s, "2026-03-07T12:00:00Z", "2026-03-07T13:00:00Z");
    expect_next(s, "2026-03-07T13:00:00Z", "2026-03-08T12:00:00Z");
    expect_prev(s, "2026-03-08T11:59:59Z", "2026-03-07T13:00:00Z");
    expect_prev(s, "2026-03-08T12:00:00Z", "2026-03-08T12:00:00Z");
    struct digest_period p;
    ck_assert_int_eq(digest_period_containing(&s, utc("2026-03-08T06:00:00Z"), &p), 0);
    ck_assert_int_eq(p.end - p.start, 23 * 3600); /* the short day */
    ck_assert_int_eq(digest_period_containing(&s, utc("2026-11-01T10:00:00Z"), &p), 0);
    ck_assert_str_eq(fmt(p.start), "2026-10-31T12:00:00Z");
    ck_assert_str_eq(fmt(p.end), "2026-11-01T13:00:00Z");
    ck_assert_int_eq(p.end - p.start, 25 * 3600); /* the long day */
}
END_TEST

START_TEST(test_gap_and_overlap)
{
    /* 02:30 does not exist on 2026-03-08 in Chicago: 03:30 CDT */
    struct digest_schedule s = parse_ok("daily 02:30 America/Chicago");
    expect_next(s, "2026-03-07T09:00:00Z", "2026-03-08T08:30:00Z");
    expect_next(s, "2026-03-08T08:30:00Z", "2026-03-09T07:30:00Z");
    /* 01:30 occurs twice on 2026-11-01: once, at the first (CDT) */
    s = parse_ok("daily 01:30 America/Chicago");
    expect_next(s, "2026-11-01T00:00:00Z", "2026-11-01T06:30:00Z");
    expect_next(s, "2026-11-01T06:30:00Z", "2026-11-02T07:30:00Z");
    expect_prev(s, "2026-11-02T07:29:00Z", "2026-11-01T06:30:00Z");
    /* Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET */
    s = parse_ok("weekly sun 02:30 Europe/Berlin");
    expect_next(s, "2026-03-22T12:00:00Z", "2026-03-29T01:30:00Z");
    expect_next(s, "2026-03-29T01:30:00Z", "2026-04-05T00:30:00Z");
    expect_next(s, "2026-10-20T00:00:00Z", "2026-10-25T00:30:00Z");
    expect_next(s, "2026-10-25T00:30:00Z", "2026-11-01T01:30:00Z");
    struct digest_period p;
    ck_assert_int_eq(digest_period_containing(&s, utc("2026-10-28T00:00:00Z"), &p), 0);
    ck_assert_int_eq(p.end - p.start, 7 * 86400 + 3600);
}
END_TEST

START_TEST(test_weekly_and_cron)
{
    struct digest_schedule s = parse_ok("weekly mon 07:00 America/Chicago");
    /* 2026-11-23 is a Monday */
    expect_next(s, "2026-11-20T00:00:00Z", "2026-11-23T13:00:00Z");
    expect_prev(s, "2026-11-23T12:59:59Z", "2026-11-16T13:00:00Z");
    struct digest_schedule c = parse_ok("cron \"0 7 * * 1\" America/Chicago");
    for (int64_t t = utc("2026-01-01T00:00:00Z"); t < utc("2027-01-01T00:00:00Z"); t += 86400 * 3)
        ck_assert_int_eq(digest_next(&s, t), digest_next(&c, t));
    c = parse_ok("cron \"*/15 9-17 * * mon-fri\" UTC");
    expect_next(c, "2026-11-20T17:45:00Z", "2026-11-23T09:00:00Z"); /* Friday -> Monday */
    expect_next(c, "2026-11-23T09:00:00Z", "2026-11-23T09:15:00Z");
    /* day of month or day of week when both are restricted */
    c = parse_ok("cron \"0 0 1 * mon\" UTC");
    expect_next(c, "2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z");
    expect_next(c, "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z");
    c = parse_ok("cron \"0 0 29 2 *\" UTC");
    expect_next(c, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    /* every minute across Berlin's gap: 03:00 CEST follows 01:59 CET; in
     * the overlap each wall time fires once, so after 02:59 CEST comes
     * 03:00 CET, an hour later */
    c = parse_ok("cron \"* * * * *\" Europe/Berlin");
    expect_next(c, "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z");
    expect_next(c, "2026-10-25T00:59:00Z", "2026-10-25T02:00:00Z");
    expect_next(c, "2026-10-25T01:59:00Z", "2026-10-25T02:00:00Z");
}
END_TEST

START_TEST(test_due_periods)
{
    struct digest_schedule s = parse_ok("daily 07:00 America/Chicago");
    struct digest_period p[10];
    /* created 2026-03-06 10:00 local, back on 2026-03-09 08:00 local: three
     * periods missed, the first straddling the creation */
    size_t n = digest_due(&s, utc("2026-03-06T16:00:00Z"), utc("2026-03-09T13:00:00Z"), p, 10);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(fmt(p[0].start), "2026-03-06T13:00:00Z");
    ck_assert_str_eq(fmt(p[0].end), "2026-03-07T13:00:00Z");
    ck_assert_str_eq(fmt(p[1].end), "2026-03-08T12:00:00Z");
    ck_assert_str_eq(fmt(p[2].start), "2026-03-08T12:00:00Z");
    ck_assert_str_eq(fmt(p[2].end), "2026-03-09T12:00:00Z");
    /* after the last one, nothing until the next end */
    ck_assert_uint_eq(digest_due(&s, p[2].end, utc("2026-03-10T11:59:00Z"), p, 10), 0);
    ck_assert_uint_eq(
        digest_due(&s, utc("2026-03-06T16:00:00Z"), utc("2026-03-09T13:00:00Z"), p, 2), 2);
    /* TZ is left as it was */
    setenv("TZ", "Asia/Tokyo", 1);
    digest_next(&s, 0);
    ck_assert_str_eq(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
    digest_next(&s, 0);
    ck_assert_ptr_null(getenv("TZ"));
}
END_TEST

START_TEST(test_count_window)
{
    /* a leadership group: the period itself, and the schedule's previous one */
    struct digest_period p = {utc("2026-11-22T13:00:00Z"), utc("2026-11-23T13:00:00Z")};
    struct digest_period count, prev = {utc("2026-11-21T13:00:00Z"), p.start};
    ck_assert_int_eq(digest_count_window("leadership:southeast", p, &count, &prev), 0);
    ck_assert(count.start == p.start && count.end == p.end);
    ck_assert_str_eq(fmt(prev.start), "2026-11-21T13:00:00Z");
    /* a jurisdiction: whole UTC months, however short the period */
    prev = (struct digest_period){utc("2026-11-21T13:00:00Z"), p.start};
    ck_assert_int_eq(digest_count_window("US-TN", p, &count, &prev), 1);
    ck_assert_str_eq(fmt(count.start), "2026-11-01T00:00:00Z");
    ck_assert_str_eq(fmt(count.end), "2026-12-01T00:00:00Z");
    ck_assert_str_eq(fmt(prev.start), "2026-10-01T00:00:00Z");
    ck_assert_str_eq(fmt(prev.end), "2026-11-01T00:00:00Z");
    /* a period across a month end: both months, compared with the two before */
    p = (struct digest_period){utc("2026-12-30T13:00:00Z"), utc("2027-01-06T13:00:00Z")};
    ck_assert_int_eq(digest_count_window("US-MN-HENNEPIN", p, &count, &prev), 1);
    ck_assert_str_eq(fmt(count.start), "2026-12-01T00:00:00Z");
    ck_assert_str_eq(fmt(count.end), "2027-02-01T00:00:00Z");
    ck_assert_str_eq(fmt(prev.start), "2026-10-01T00:00:00Z");
    /* a period that ends at a month's first instant stays in the month before */
    p = (struct digest_period){utc("2026-11-30T00:00:00Z"), utc("2026-12-01T00:00:00Z")};
    ck_assert_int_eq(digest_count_window("US-TN", p, &count, &prev), 1);
    ck_assert_str_eq(fmt(count.end), "2026-12-01T00:00:00Z");
    ck_assert_int_eq(digest_count_window("us-tn", p, &count, &prev), 0);
}
END_TEST

static json_t *counts(void)
{
    return json_pack(
        "{s:[{s:s,s:i,s:s,s:s,s:s,s:s,s:s},{s:s,s:i,s:s,s:s,s:s,s:s,s:s}],"
        "s:{s:i,s:i,s:i,s:i},s:[{s:s,s:i,s:i,s:i,s:i},{s:s,s:i,s:i,s:i,s:i},"
        "{s:s,s:i,s:i,s:i,s:i},{s:s,s:i,s:i,s:i,s:i}]}",
        "notices", "id", "sn-0001", "revision", 1, "status", "issued", "severity", "advisory",
        "rule", "r1", "headline", "<script>alert(1)</script> & more", "issued_at",
        "2026-11-23T10:00:00Z", "id", "sn-0002", "revision", 3, "status", "resolved", "severity",
        "warning", "rule", "r2", "headline", "Resolved one", "issued_at", "2026-11-23T11:00:00Z",
        "totals", "reviews", 12, "jurisdictions", 4, "prev_reviews", 2, "prev_jurisdictions", 2,
        "themes", "theme", "assessment", "reviews", 9, "jurisdictions", 4, "prev_reviews", 4,
        "prev_jurisdictions", 2, "theme", "workload", "reviews", 2, "jurisdictions", 1,
        "prev_reviews", 7, "prev_jurisdictions", 3, "theme", "teamwork_coordination", "reviews", 5,
        "jurisdictions", 3, "prev_reviews", 0, "prev_jurisdictions", 0, "theme", "gone", "reviews",
        0, "jurisdictions", 0, "prev_reviews", 5, "prev_jurisdictions", 3);
}

START_TEST(test_build_and_render)
{
    json_t *c = counts();
    struct digest_input in = {7,
                              "leadership:southeast",
                              "daily 07:00 America/Chicago",
                              "America/Chicago",
                              {utc("2026-11-22T13:00:00Z"), utc("2026-11-23T13:00:00Z")},
                              {utc("2026-11-22T13:00:00Z"), utc("2026-11-23T13:00:00Z")},
                              {utc("2026-11-21T13:00:00Z"), utc("2026-11-22T13:00:00Z")},
                              0,
                              3,
                              "https://sn.example.org",
                              c};
    json_t *d = digest_build(&in);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), "sd-7-20261122T130000Z");
    ck_assert(!digest_nothing_new(d));
    const json_t *by_reviews = json_object_get(json_object_get(d, "themes"), "by_reviews");
    ck_assert_uint_eq(json_array_size(by_reviews), 3); /* "gone" has none this period */
    char *order = json_dumps(by_reviews, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_str_eq(order, "[{\"theme\":\"assessment\",\"count\":9,\"previous\":4,\"change\":5},"
                            "{\"theme\":\"teamwork_coordination\",\"count\":5,\"previous\":\"<3\","
                            "\"change\":null},"
                            "{\"theme\":\"workload\",\"count\":\"<3\",\"previous\":7,\"change\":"
                            "null}]");
    free(order);
    const json_t *totals = json_object_get(d, "totals");
    ck_assert_str_eq(json_string_value(json_object_get(totals, "previous_reviews")), "<3");
    ck_assert(json_is_null(json_object_get(totals, "reviews_change")));
    const json_t *fresh = json_object_get(json_object_get(d, "notices"), "new");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fresh, 0), "link")),
                     "https://sn.example.org/dashboard/notices/sn-0001");
    char *subject, *text, *html;
    digest_render(d, &subject, &text, &html);
    ck_assert_str_eq(subject, "Safety Notice digest 2026-11-22: 1 new, 0 escalated, 1 resolved");
    ck_assert_ptr_null(strstr(html, "<script>"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    ck_assert_ptr_nonnull(strstr(html, "class=\"bar\""));
    ck_assert_ptr_nonnull(strstr(text, "<script>alert(1)</script> & more"));
    ck_assert_ptr_nonnull(strstr(text, "1. assessment: 9 reviews (previous 4, change +5)"));
    ck_assert_ptr_nonnull(
        strstr(text, "Reviews finalized in the period: 12 (before: <3, change n/a)"));
    ck_assert_ptr_null(strstr(text, ": 2 reviews")); /* workload's 2 is not shown */
    free(subject);
    free(text);
    free(html);
    json_t *ev = digest_cloudevent(d);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), DIGEST_EVENT_TYPE);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "time")), "2026-11-23T13:00:00Z");
    json_decref(ev);
    json_decref(d);

    json_t *empty =
        json_pack("{s:[],s:{s:i,s:i,s:i,s:i},s:[]}", "notices", "totals", "reviews", 0,
                  "jurisdictions", 0, "prev_reviews", 5, "prev_jurisdictions", 3, "themes");
    in.counts = empty;
    d = digest_build(&in);
    ck_assert(digest_nothing_new(d));
    digest_render(d, &subject, &text, &html);
    ck_assert_ptr_nonnull(strstr(subject, "nothing new"));
    ck_assert_ptr_nonnull(strstr(text, "Nothing new"));
    free(subject);
    free(text);
    free(html);
    json_decref(d);
    json_decref(empty);
    json_decref(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("digest");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_grammar);
    tcase_add_test(tc, test_daily_chicago_dst);
    tcase_add_test(tc, test_gap_and_overlap);
    tcase_add_test(tc, test_weekly_and_cron);
    tcase_add_test(tc, test_due_periods);
    tcase_add_test(tc, test_count_window);
    tcase_add_test(tc, test_build_and_render);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
