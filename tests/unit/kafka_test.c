/* kafka: the producer's connection state on the loop, against librdkafka's
 * mock cluster and against an address where nothing listens. */
#include <check.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"
#include "metrics.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

struct watch {
    struct event_base *base;
    int want; /* break the loop when the hook reports this */
    int ups, downs;
    int last;
};

static struct watch w;
static int devnull = -1;

static void on_state(struct kafka *k, int up, void *arg)
{
    (void)k;
    struct watch *wt = arg;
    ck_assert_ptr_eq(wt, &w);
    if (up)
        wt->ups++;
    else
        wt->downs++;
    wt->last = up;
    if (up == wt->want) event_base_loopbreak(wt->base);
}

static void setup(void)
{
    memset(&w, 0, sizeof(w));
    w.want = -1;
    w.last = -1;
    w.base = event_base_new();
    ck_assert_ptr_nonnull(w.base);
    /* librdkafka is chatty; keep the test output readable */
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    log_set_fd(devnull);
}

static void teardown(void)
{
    log_set_fd(2);
    close(devnull);
    event_base_free(w.base);
    metrics_reset();
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until the hook reports `want` (0 or 1), or ms pass. */
static void run_until(int want, int ms)
{
    w.want = want;
    struct event *deadline = evtimer_new(w.base, on_deadline, w.base);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(deadline, &tv);
    event_base_dispatch(w.base);
    event_free(deadline);
    w.want = -1;
}

START_TEST(test_mock_cluster_up)
{
    struct kafka_mock *m = NULL;
    char err[512] = "";
    ck_assert_msg(kafka_mock_start(1, &m, err, sizeof(err)) == SN_OK, "mock: %s", err);
    const char *bootstrap = kafka_mock_bootstrap(m);
    ck_assert_ptr_nonnull(bootstrap);
    const char *colon = strrchr(bootstrap, ':');
    ck_assert_msg(bootstrap[0] != ':' && colon && atoi(colon + 1) > 0,
                  "bootstrap is not host:port: '%s'", bootstrap);
    ck_assert_msg(strchr(bootstrap, ',') == NULL, "one broker, several addresses: %s", bootstrap);

    struct kafka *k = NULL;
    const struct kafka_hooks hooks = {.on_state = on_state, .arg = &w};
    ck_assert_msg(kafka_new(w.base, bootstrap, NULL, &hooks, &k, err, sizeof(err)) == SN_OK,
                  "kafka_new: %s", err);
    ck_assert_int_eq(kafka_is_up(k), 0);
    char expect[600];
    snprintf(expect, sizeof(expect), "connecting to %s", bootstrap);
    ck_assert_str_eq(kafka_detail(k), expect);

    run_until(1, 15000);
    ck_assert_msg(kafka_is_up(k) == 1, "not up after 15 s; detail: %s", kafka_detail(k));
    ck_assert_int_eq(w.ups, 1);
    ck_assert_int_eq(w.downs, 0);
    ck_assert_str_eq(kafka_detail(k), "connected to 1 broker");

    char *text = metrics_render();
    ck_assert_contains(text, "# TYPE sn_kafka_up gauge\nsn_kafka_up 1\n");
    free(text);

    kafka_free(k, 1000);
    kafka_mock_free(m);
}
END_TEST

START_TEST(test_mock_cluster_goes_away)
{
    struct kafka_mock *m = NULL;
    char err[512] = "";
    ck_assert_msg(kafka_mock_start(1, &m, err, sizeof(err)) == SN_OK, "mock: %s", err);
    struct kafka *k = NULL;
    const struct kafka_hooks hooks = {.on_state = on_state, .arg = &w};
    ck_assert_int_eq(kafka_new(w.base, kafka_mock_bootstrap(m), NULL, &hooks, &k, err, sizeof(err)),
                     SN_OK);
    run_until(1, 15000);
    ck_assert_msg(kafka_is_up(k) == 1, "not up after 15 s; detail: %s", kafka_detail(k));

    kafka_mock_free(m);
    run_until(0, 15000);
    ck_assert_msg(kafka_is_up(k) == 0, "still up 15 s after the cluster went away");
    ck_assert_int_eq(w.downs, 1);
    ck_assert_int_eq(w.last, 0);
    ck_assert_msg(strstr(kafka_detail(k), "connected to") == NULL,
                  "detail still says connected: %s", kafka_detail(k));
    char *text = metrics_render();
    ck_assert_contains(text, "\nsn_kafka_up 0\n");
    free(text);
    kafka_free(k, 100);
}
END_TEST

START_TEST(test_nothing_listening)
{
    struct kafka *k = NULL;
    char err[512] = "";
    const struct kafka_hooks hooks = {.on_state = on_state, .arg = &w};
    ck_assert_msg(kafka_new(w.base, "127.0.0.1:1", NULL, &hooks, &k, err, sizeof(err)) == SN_OK,
                  "kafka_new: %s", err);
    run_until(1, 2500);
    ck_assert_int_eq(kafka_is_up(k), 0);
    ck_assert_int_eq(w.ups, 0);
    const char *detail = kafka_detail(k);
    ck_assert_msg(detail[0] != '\0', "detail is empty");
    ck_assert_msg(strstr(detail, "connected to") == NULL, "detail says connected: %s", detail);
    char *text = metrics_render();
    ck_assert_contains(text, "\nsn_kafka_up 0\n");
    free(text);
    kafka_free(k, 100);
}
END_TEST

/* The value librdkafka holds for name, "" when unset. */
static const char *conf_value(rd_kafka_conf_t *rc, const char *name)
{
    static char value[512];
    size_t len = sizeof(value);
    if (rd_kafka_conf_get(rc, name, value, &len) != RD_KAFKA_CONF_OK) value[0] = '\0';
    return value;
}

START_TEST(test_security_settings)
{
    char err[512];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    /* plaintext (or none) changes nothing */
    ck_assert_int_eq(kafka_conf_security(rc, NULL, err, sizeof(err)), 0);
    const struct kafka_security plain = {"plaintext", "PLAIN", "u", "p", "ca.pem", "", ""};
    ck_assert_int_eq(kafka_conf_security(rc, &plain, err, sizeof(err)), 0);
    ck_assert_str_eq(conf_value(rc, "security.protocol"), "plaintext");
    ck_assert_str_eq(conf_value(rc, "sasl.username"), "");

    const struct kafka_security scram = {
        "sasl_ssl", "SCRAM-SHA-512", "sn-broker", "s3cret", "/etc/ssl/kafka-ca.pem", "", ""};
    ck_assert_msg(kafka_conf_security(rc, &scram, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(conf_value(rc, "security.protocol"), "sasl_ssl");
    ck_assert_str_eq(conf_value(rc, "sasl.mechanisms"), "SCRAM-SHA-512");
    ck_assert_str_eq(conf_value(rc, "sasl.username"), "sn-broker");
    ck_assert_str_eq(conf_value(rc, "sasl.password"), "s3cret");
    ck_assert_str_eq(conf_value(rc, "ssl.ca.location"), "/etc/ssl/kafka-ca.pem");
    rd_kafka_conf_destroy(rc);

    /* ssl alone: no SASL settings even when they are configured */
    rc = rd_kafka_conf_new();
    const struct kafka_security tls = {"ssl",    "PLAIN", "ignored", "ignored",
                                       "ca.pem", "c.pem", "k.pem"};
    ck_assert_msg(kafka_conf_security(rc, &tls, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(conf_value(rc, "security.protocol"), "ssl");
    ck_assert_str_eq(conf_value(rc, "sasl.username"), "");
    ck_assert_str_eq(conf_value(rc, "ssl.certificate.location"), "c.pem");
    ck_assert_str_eq(conf_value(rc, "ssl.key.location"), "k.pem");

    /* what librdkafka refuses is named */
    const struct kafka_security bad = {"no_such_protocol", "", "", "", "", "", ""};
    ck_assert_int_eq(kafka_conf_security(rc, &bad, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "security.protocol"));
    rd_kafka_conf_destroy(rc);
}
END_TEST

START_TEST(test_free_null)
{
    kafka_free(NULL, 0);
    kafka_mock_free(NULL);
}
END_TEST

static Suite *kafka_suite(void)
{
    Suite *s = suite_create("kafka");
    TCase *tc = tcase_create("producer");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_mock_cluster_up);
    tcase_add_test(tc, test_mock_cluster_goes_away);
    tcase_add_test(tc, test_nothing_listening);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_security_settings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kafka_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
