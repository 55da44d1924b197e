/* store: the compiled migrations, result helpers, and the connection state
 * machine against servers that are not there (no PostgreSQL needed). */
#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "store.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

START_TEST(test_migrations_table)
{
    ck_assert_msg(store_migrations_count > 0, "no migrations compiled in");
    for (size_t i = 0; i < store_migrations_count; i++) {
        const struct migration *m = &store_migrations[i];
        ck_assert_msg(m->version == (int)i + 1, "migration %zu has version %d, expected %zu", i,
                      m->version, i + 1);
        ck_assert_msg(m->name && m->name[0], "migration %d has no name", m->version);
        ck_assert_msg(strspn(m->name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(m->name),
                      "migration %d has a name that is not lower_snake_case: %s", m->version,
                      m->name);
        ck_assert_msg(m->sql && strlen(m->sql) > 10, "migration %d (%s) has no SQL", m->version,
                      m->name);
    }
}
END_TEST

START_TEST(test_store_failed)
{
    ck_assert_int_eq(store_failed(NULL), 1);
    static const struct {
        ExecStatusType status;
        int failed;
    } cases[] = {{PGRES_COMMAND_OK, 0},  {PGRES_TUPLES_OK, 0},    {PGRES_FATAL_ERROR, 1},
                 {PGRES_EMPTY_QUERY, 1}, {PGRES_BAD_RESPONSE, 1}, {PGRES_NONFATAL_ERROR, 1}};
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        PGresult *res = PQmakeEmptyPGresult(NULL, cases[i].status);
        ck_assert_ptr_nonnull(res);
        ck_assert_msg(store_failed(res) == cases[i].failed, "store_failed(%s) = %d, expected %d",
                      PQresStatus(cases[i].status), store_failed(res), cases[i].failed);
        PQclear(res);
    }
}
END_TEST

START_TEST(test_state_names)
{
    ck_assert_str_eq(store_state_name(STORE_DISCONNECTED), "disconnected");
    ck_assert_str_eq(store_state_name(STORE_CONNECTING), "connecting");
    ck_assert_str_eq(store_state_name(STORE_MIGRATING), "migrating");
    ck_assert_str_eq(store_state_name(STORE_READY), "ready");
    ck_assert_str_eq(store_state_name(STORE_FAILED), "failed");
}
END_TEST

/* ---- the connection state machine ---- */

#define MAX_STATES 64

struct watch {
    struct event_base *base;
    enum store_state states[MAX_STATES];
    int nstates;
    int break_on_disconnect;
    int callbacks;
};

static struct watch w;
static int log_fd = -1;

static void on_state(struct store *s, enum store_state state, void *arg)
{
    (void)s;
    struct watch *wt = arg;
    ck_assert_ptr_eq(wt, &w);
    if (wt->nstates < MAX_STATES) wt->states[wt->nstates++] = state;
    if (state == STORE_DISCONNECTED && wt->break_on_disconnect) event_base_loopbreak(wt->base);
}

static void on_result(PGresult *res, void *arg)
{
    (void)res;
    ((struct watch *)arg)->callbacks++;
}

static int count_state(enum store_state state)
{
    int n = 0;
    for (int i = 0; i < w.nstates; i++)
        n += w.states[i] == state;
    return n;
}

static void loop_setup(void)
{
    memset(&w, 0, sizeof(w));
    w.base = event_base_new();
    ck_assert_ptr_nonnull(w.base);
    char log_path[64] = "/tmp/sn-store-test-log-XXXXXX";
    log_fd = mkstemp(log_path);
    ck_assert_int_ge(log_fd, 0);
    unlink(log_path); /* nothing is left behind, whatever happens */
    log_set_fd(log_fd);
}

static void loop_teardown(void)
{
    log_set_fd(2);
    close(log_fd);
    event_base_free(w.base);
    metrics_reset();
}

/* What the logger wrote during the test; the caller frees. */
static char *read_log(void)
{
    char *text = calloc(1, 65536);
    ck_assert_ptr_nonnull(text);
    ssize_t n = pread(log_fd, text, 65535, 0);
    ck_assert_int_ge(n, 0);
    text[n] = '\0';
    return text;
}

static void run_for_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(w.base, &tv);
    event_base_dispatch(w.base);
}

#define UNREACHABLE "host=/nonexistent-dir-for-test port=5432 dbname=x connect_timeout=2"

START_TEST(test_unreachable_server)
{
    const struct store_hooks hooks = {.on_state = on_state, .arg = &w};
    struct store *s = store_new(w.base, UNREACHABLE, 1000, &hooks);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(store_get_state(s), STORE_DISCONNECTED);
    ck_assert_str_eq(store_detail(s), "not started");
    ck_assert_int_eq(w.nstates, 0);
    ck_assert_int_eq(store_query(s, "SELECT 1", 0, NULL, on_result, &w), SN_ERR_UNAVAILABLE);

    store_start(s);
    run_for_ms(1500);

    ck_assert_msg(w.nstates >= 2, "expected at least 2 state changes, got %d", w.nstates);
    ck_assert_msg(w.states[0] == STORE_CONNECTING, "first state: expected connecting, got %s",
                  store_state_name(w.states[0]));
    ck_assert_msg(w.states[1] == STORE_DISCONNECTED, "second state: expected disconnected, got %s",
                  store_state_name(w.states[1]));
    for (int i = 0; i < w.nstates; i++)
        ck_assert_msg(w.states[i] == (i % 2 == 0 ? STORE_CONNECTING : STORE_DISCONNECTED),
                      "state %d is %s: it should alternate connecting/disconnected", i,
                      store_state_name(w.states[i]));
    /* backoff 250 ms, 500 ms, 1000 ms (each +-20%): 2 to 4 attempts in 1.5 s */
    int attempts = count_state(STORE_CONNECTING);
    ck_assert_msg(attempts >= 2 && attempts <= 4, "expected 2 to 4 connection attempts, got %d",
                  attempts);

    ck_assert_contains(store_detail(s), "cannot connect");
    ck_assert_contains(store_detail(s), "nonexistent-dir-for-test");
    ck_assert_msg(strchr(store_detail(s), '\n') == NULL, "detail has a newline: %s",
                  store_detail(s));

    ck_assert_int_eq(store_query(s, "SELECT 1", 0, NULL, on_result, &w), SN_ERR_UNAVAILABLE);
    const char *params[] = {"1"};
    ck_assert_int_eq(store_query(s, "SELECT $1", 1, params, on_result, &w), SN_ERR_UNAVAILABLE);

    char *text = metrics_render();
    ck_assert_contains(text, "# TYPE sn_database_up gauge\nsn_database_up 0\n");
    free(text);

    text = read_log();
    ck_assert_contains(text, "database not reachable, retrying");
    ck_assert_contains(text, "\"attempt\":1");
    free(text);

    int before = w.nstates;
    store_free(s);
    ck_assert_int_eq(w.callbacks, 0);
    ck_assert_int_eq(w.nstates, before); /* no hook calls from store_free */
}
END_TEST

START_TEST(test_reconnect_max_caps_backoff)
{
    const struct store_hooks hooks = {.on_state = on_state, .arg = &w};
    struct store *s = store_new(w.base, UNREACHABLE, 100, &hooks);
    store_start(s);
    run_for_ms(1000);
    /* every wait is at most 100 ms +20%, so about 8 attempts in a second; without
     * the cap (250 ms, 500 ms, ...) there would be 3. 5 leaves room for a busy machine. */
    int attempts = count_state(STORE_CONNECTING);
    ck_assert_msg(attempts >= 5, "expected at least 5 attempts with a 100 ms cap, got %d",
                  attempts);
    store_free(s);
}
END_TEST

START_TEST(test_reconnect_now)
{
    const struct store_hooks hooks = {.on_state = on_state, .arg = &w};
    struct store *s = store_new(w.base, UNREACHABLE, 60000, &hooks);
    w.break_on_disconnect = 1;
    store_start(s);
    if (store_get_state(s) != STORE_DISCONNECTED) run_for_ms(5000);
    ck_assert_int_eq(store_get_state(s), STORE_DISCONNECTED);
    int attempts = count_state(STORE_CONNECTING);
    ck_assert_int_eq(attempts, 1);

    /* the retry timer waits ~250 ms; reconnect_now does not */
    store_reconnect_now(s);
    ck_assert_msg(count_state(STORE_CONNECTING) == 2,
                  "store_reconnect_now did not start an attempt (attempts: %d)",
                  count_state(STORE_CONNECTING));
    store_free(s);
}
END_TEST

/* A TCP server that accepts and hangs up at once: the asynchronous path of
 * PQconnectPoll, through the loop. */
static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int c = accept(fd, NULL, NULL);
    if (c >= 0) close(c);
}

START_TEST(test_server_hangs_up)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    struct event *accept_ev = event_new(w.base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(accept_ev, NULL);

    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable connect_timeout=2",
             ntohs(sin.sin_port));
    const struct store_hooks hooks = {.on_state = on_state, .arg = &w};
    struct store *s = store_new(w.base, conninfo, 60000, &hooks);
    w.break_on_disconnect = 1;
    store_start(s);
    run_for_ms(5000);

    ck_assert_msg(w.nstates == 2, "expected connecting then disconnected, got %d changes",
                  w.nstates);
    ck_assert_int_eq(w.states[0], STORE_CONNECTING);
    ck_assert_int_eq(w.states[1], STORE_DISCONNECTED);
    ck_assert_contains(store_detail(s), "cannot connect");
    ck_assert_int_eq(store_query(s, "SELECT 1", 0, NULL, on_result, &w), SN_ERR_UNAVAILABLE);
    store_free(s);
    event_free(accept_ev);
    close(lfd);
}
END_TEST

START_TEST(test_free_without_start)
{
    struct store *s = store_new(w.base, UNREACHABLE, 1000, NULL);
    ck_assert_int_eq(store_get_state(s), STORE_DISCONNECTED);
    store_free(s);
    store_free(NULL);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("static");
    tcase_add_test(tc, test_migrations_table);
    tcase_add_test(tc, test_store_failed);
    tcase_add_test(tc, test_state_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("connection");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_unreachable_server);
    tcase_add_test(tc, test_reconnect_max_caps_backoff);
    tcase_add_test(tc, test_reconnect_now);
    tcase_add_test(tc, test_server_hangs_up);
    tcase_add_test(tc, test_free_without_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
