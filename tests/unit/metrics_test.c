/* metrics: the registry and its Prometheus text exposition (format 0.0.4). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void teardown(void)
{
    metrics_reset();
}

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

START_TEST(test_empty_registry)
{
    char *text = metrics_render();
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

START_TEST(test_counter_with_labels)
{
    metrics_register("t_requests_total", METRIC_COUNTER, "Requests answered.");
    metrics_counter_add("t_requests_total", "route=\"/a\",code=\"200\"", 1);
    metrics_counter_add("t_requests_total", "route=\"/a\",code=\"404\"", 1);
    metrics_counter_add("t_requests_total", "route=\"/a\",code=\"200\"", 2);
    char *text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_requests_total Requests answered.\n"
                           "# TYPE t_requests_total counter\n"
                           "t_requests_total{route=\"/a\",code=\"200\"} 3\n"
                           "t_requests_total{route=\"/a\",code=\"404\"} 1\n");
    free(text);
}
END_TEST

START_TEST(test_gauge_without_labels)
{
    metrics_register("t_up", METRIC_GAUGE, "1 when up.");
    metrics_gauge_set("t_up", "", 1);
    metrics_gauge_set("t_up", "", 0.5);
    char *text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_up 1 when up.\n"
                           "# TYPE t_up gauge\n"
                           "t_up 0.5\n");
    free(text);

    metrics_gauge_set("t_up", "", -3);
    text = metrics_render();
    ck_assert_contains(text, "\nt_up -3\n");
    free(text);
}
END_TEST

START_TEST(test_number_formats)
{
    metrics_register("t_c", METRIC_COUNTER, "c");
    metrics_counter_add("t_c", "k=\"frac\"", 0.25);
    metrics_counter_add("t_c", "k=\"frac\"", 0.5);
    metrics_counter_add("t_c", "k=\"big\"", 1e20);
    metrics_counter_add("t_c", "k=\"zero\"", 0);
    char *text = metrics_render();
    ck_assert_contains(text, "t_c{k=\"frac\"} 0.75\n");
    ck_assert_contains(text, "t_c{k=\"big\"} 1e+20\n");
    ck_assert_contains(text, "t_c{k=\"zero\"} 0\n");
    free(text);
}
END_TEST

START_TEST(test_histogram_with_labels)
{
    metrics_register("t_seconds", METRIC_HISTOGRAM, "Durations.");
    metrics_histogram_observe("t_seconds", "route=\"/a\"", 0.003);
    metrics_histogram_observe("t_seconds", "route=\"/a\"", 0.02);
    metrics_histogram_observe("t_seconds", "route=\"/a\"", 7);
    char *text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_seconds Durations.\n"
                           "# TYPE t_seconds histogram\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.0005\"} 0\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.001\"} 0\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.0025\"} 0\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.005\"} 1\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.01\"} 1\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.025\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.05\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.25\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"2.5\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"5\"} 2\n"
                           "t_seconds_bucket{route=\"/a\",le=\"10\"} 3\n"
                           "t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"
                           "t_seconds_sum{route=\"/a\"} 7.023\n"
                           "t_seconds_count{route=\"/a\"} 3\n");
    free(text);
}
END_TEST

START_TEST(test_histogram_without_labels)
{
    metrics_register("t_h", METRIC_HISTOGRAM, "h");
    metrics_histogram_observe("t_h", "", 0.005); /* on a bound: le is inclusive */
    metrics_histogram_observe("t_h", "", 100);   /* above every bound: only +Inf */
    char *text = metrics_render();
    ck_assert_contains(text, "\nt_h_bucket{le=\"0.0025\"} 0\n");
    ck_assert_contains(text, "\nt_h_bucket{le=\"0.005\"} 1\n");
    ck_assert_contains(text, "\nt_h_bucket{le=\"10\"} 1\n");
    ck_assert_contains(text, "\nt_h_bucket{le=\"+Inf\"} 2\n");
    ck_assert_contains(text, "\nt_h_sum 100.005\n");
    ck_assert_contains(text, "\nt_h_count 2\n");
    ck_assert_msg(strstr(text, "t_h_sum{") == NULL && strstr(text, "t_h_count{") == NULL,
                  "a series without labels must render without braces:\n%s", text);
    free(text);
}
END_TEST

START_TEST(test_families_in_registration_order)
{
    metrics_register("t_b", METRIC_GAUGE, "b");
    metrics_register("t_a", METRIC_COUNTER, "a");
    /* registering again (even with another type) changes nothing */
    metrics_register("t_b", METRIC_COUNTER, "other help");
    metrics_gauge_set("t_b", "", 2);
    metrics_counter_add("t_a", "", 1);
    char *text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_b b\n"
                           "# TYPE t_b gauge\n"
                           "t_b 2\n"
                           "# HELP t_a a\n"
                           "# TYPE t_a counter\n"
                           "t_a 1\n");
    free(text);
}
END_TEST

START_TEST(test_family_without_series)
{
    metrics_register("t_none", METRIC_COUNTER, "nothing yet");
    char *text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_none nothing yet\n# TYPE t_none counter\n");
    free(text);
}
END_TEST

START_TEST(test_render_grows_past_initial_buffer)
{
    metrics_register("t_many_total", METRIC_COUNTER, "many series");
    char labels[64];
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof(labels), "series=\"%03d\"", i);
        metrics_counter_add("t_many_total", labels, i);
    }
    char *text = metrics_render();
    ck_assert_msg(strlen(text) > 4096, "render should exceed 4096 bytes, got %zu", strlen(text));
    ck_assert_contains(text, "\nt_many_total{series=\"000\"} 0\n");
    ck_assert_contains(text, "\nt_many_total{series=\"250\"} 250\n");
    const char *tail = "t_many_total{series=\"499\"} 499\n";
    size_t len = strlen(text), tlen = strlen(tail);
    ck_assert_msg(len >= tlen && strcmp(text + len - tlen, tail) == 0, "render should end with %s",
                  tail);
    free(text);
}
END_TEST

START_TEST(test_reset)
{
    metrics_register("t_r", METRIC_COUNTER, "r");
    metrics_counter_add("t_r", "", 5);
    metrics_reset();
    char *text = metrics_render();
    ck_assert_str_eq(text, "");
    free(text);
    /* a family registered again starts from zero */
    metrics_register("t_r", METRIC_COUNTER, "r");
    metrics_counter_add("t_r", "", 1);
    text = metrics_render();
    ck_assert_str_eq(text, "# HELP t_r r\n# TYPE t_r counter\nt_r 1\n");
    free(text);
}
END_TEST

START_TEST(test_wrong_type_aborts)
{
    metrics_register("t_g", METRIC_GAUGE, "g");
    metrics_counter_add("t_g", "", 1);
}
END_TEST

START_TEST(test_unregistered_aborts)
{
    metrics_gauge_set("t_never_registered", "", 1);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_empty_registry);
    tcase_add_test(tc, test_counter_with_labels);
    tcase_add_test(tc, test_gauge_without_labels);
    tcase_add_test(tc, test_number_formats);
    tcase_add_test(tc, test_histogram_with_labels);
    tcase_add_test(tc, test_histogram_without_labels);
    tcase_add_test(tc, test_families_in_registration_order);
    tcase_add_test(tc, test_family_without_series);
    tcase_add_test(tc, test_render_grows_past_initial_buffer);
    tcase_add_test(tc, test_reset);
    suite_add_tcase(s, tc);

    /* misuse aborts: needs each test in its own process (Check's default) */
    const char *fork_mode = getenv("CK_FORK");
    if (!fork_mode || strcmp(fork_mode, "no") != 0) {
        tc = tcase_create("misuse");
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_add_test_raise_signal(tc, test_wrong_type_aborts, SIGABRT);
        tcase_add_test_raise_signal(tc, test_unregistered_aborts, SIGABRT);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
