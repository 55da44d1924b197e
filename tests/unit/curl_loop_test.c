/* curl_loop: real HTTP transfers against a libevent evhttp server running on
 * the same event_base as the curl_loop, so both sides share the one thread
 * and nothing may block. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "curl_loop.h"
#include "log.h"

#define MAX_XFERS       64
#define SLOW_REPLY_SECS 2
/* long enough for a loaded machine under ASan; only a hang reaches it */
#define DEADLINE_SECS 20

/* What the test knows about one transfer. */
struct xfer {
    int id;
    int done_calls;
    CURLcode result;
    long status;
    int order;      /* 1 for the first transfer reported, 2 for the next... */
    size_t running; /* curl_loop_running() as seen from done */
    char body[256]; /* the start of the reply */
    size_t body_len;
    size_t received;   /* the whole reply's length */
    size_t mismatches; /* bytes that differ from big_byte() */
};

struct fixture {
    struct event_base *base;
    struct evhttp *http;
    int port;
    struct curl_loop *loop;
    struct event *deadline;
    int deadline_hit;
    int in_add; /* curl_loop_add() is on the stack */
    int reported;
    struct xfer xfers[MAX_XFERS];
    /* the server's side */
    int echo_seen[MAX_XFERS];
    int echo_unknown;
    size_t big_received;
    int slow_received;
    int slow_replied;
    int never_received;
};

static struct fixture fx;

/* ---- the server ---- */

static void reply_text(struct evhttp_request *req, int status, const char *text, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(evbuffer_add(out, text, len), 0);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
}

/* Counts each "body-<n>" it is sent and echoes it back. */
static void handle_echo(struct evhttp_request *req, void *arg)
{
    (void)arg;
    char body[64] = "";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len < sizeof(body)) ck_assert_int_eq(evbuffer_remove(in, body, len), (int)len);
    int n = -1, used = 0;
    if (sscanf(body, "body-%d%n", &n, &used) == 1 && (size_t)used == len && n >= 0 && n < MAX_XFERS)
        fx.echo_seen[n]++;
    else
        fx.echo_unknown++;
    reply_text(req, 200, body, strlen(body));
}

/* Echoes any body, however large. */
static void handle_big(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    fx.big_received = evbuffer_get_length(in);
    evhttp_send_reply(req, 200, "OK", in);
}

static void handle_fast(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 200, "fast", 4);
}

static void slow_reply(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    fx.slow_replied = 1;
    reply_text(arg, 200, "slow", 4);
}

/* Replies SLOW_REPLY_SECS later, from a timer: the loop runs on meanwhile. */
static void handle_slow(struct evhttp_request *req, void *arg)
{
    (void)arg;
    fx.slow_received++;
    struct timeval tv = {SLOW_REPLY_SECS, 0};
    ck_assert_int_eq(event_base_once(fx.base, -1, EV_TIMEOUT, slow_reply, req, &tv), 0);
}

/* Never replies; evhttp frees the request when the client goes away. */
static void handle_never(struct evhttp_request *req, void *arg)
{
    (void)req;
    (void)arg;
    fx.never_received++;
}

static int bound_port(evutil_socket_t fd)
{
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

static void on_deadline(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
    fx.deadline_hit = 1;
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    fx.base = event_base_new();
    ck_assert_ptr_nonnull(fx.base);
    fx.http = evhttp_new(fx.base);
    ck_assert_ptr_nonnull(fx.http);
    ck_assert_int_eq(evhttp_set_cb(fx.http, "/echo", handle_echo, NULL), 0);
    ck_assert_int_eq(evhttp_set_cb(fx.http, "/big", handle_big, NULL), 0);
    ck_assert_int_eq(evhttp_set_cb(fx.http, "/fast", handle_fast, NULL), 0);
    ck_assert_int_eq(evhttp_set_cb(fx.http, "/slow", handle_slow, NULL), 0);
    ck_assert_int_eq(evhttp_set_cb(fx.http, "/never", handle_never, NULL), 0);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(fx.http, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(sock);
    fx.port = bound_port(evhttp_bound_socket_get_fd(sock));
    fx.loop = curl_loop_new(fx.base);
    ck_assert_ptr_nonnull(fx.loop);
    fx.deadline = evtimer_new(fx.base, on_deadline, NULL);
    ck_assert_ptr_nonnull(fx.deadline);
    for (int i = 0; i < MAX_XFERS; i++)
        fx.xfers[i].id = i;
}

static void teardown(void)
{
    curl_loop_free(fx.loop);
    event_free(fx.deadline);
    evhttp_free(fx.http);
    event_base_free(fx.base);
    /* nothing left reachable from here: LeakSanitizer sees what was lost */
    memset(&fx, 0, sizeof(fx));
}

/* Runs the loop until done() says so, failing after DEADLINE_SECS. */
static void run_until(int (*done)(void), const char *what)
{
    struct timeval tv = {DEADLINE_SECS, 0};
    fx.deadline_hit = 0;
    ck_assert_int_eq(event_add(fx.deadline, &tv), 0);
    while (!done() && !fx.deadline_hit)
        ck_assert_int_ge(event_base_loop(fx.base, EVLOOP_ONCE), 0);
    ck_assert_int_eq(event_del(fx.deadline), 0);
    ck_assert_msg(!fx.deadline_hit, "still waiting for %s after %d s", what, DEADLINE_SECS);
}

/* ---- the client ---- */

/* The bytes of the large bodies: no two neighbours alike, so a lost or
 * repeated chunk shows. */
static char big_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 26) % 26);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nmemb;
    for (size_t i = 0; i < len; i++)
        if (data[i] != big_byte(x->received + i)) x->mismatches++;
    x->received += len;
    size_t room = sizeof(x->body) - 1 - x->body_len;
    size_t take = len < room ? len : room;
    memcpy(x->body + x->body_len, data, take);
    x->body_len += take;
    x->body[x->body_len] = '\0';
    return len;
}

/* An easy handle for path on the test server (any URL when path starts with
 * a scheme), POSTing body when it is not NULL. */
static CURL *make_easy(const char *path, const char *body, struct xfer *x)
{
    char url[256];
    if (strstr(path, "://"))
        snprintf(url, sizeof(url), "%s", path);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.port, path);
    CURL *easy = curl_easy_init();
    ck_assert_ptr_nonnull(easy);
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_URL, url), CURLE_OK);
    /* an http_proxy in the environment must not capture 127.0.0.1 */
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_PROXY, ""), CURLE_OK);
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L), CURLE_OK);
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body), CURLE_OK);
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_WRITEDATA, x), CURLE_OK);
    if (body) ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body), CURLE_OK);
    return easy;
}

/* Records what a transfer reported: the common part of the done callbacks. */
static void record(CURL *easy, CURLcode result, struct xfer *x)
{
    ck_assert_msg(!fx.in_add, "done called from inside curl_loop_add (transfer %d)", x->id);
    x->done_calls++;
    x->result = result;
    x->order = ++fx.reported;
    x->running = curl_loop_running(fx.loop);
    ck_assert_int_eq(curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status), CURLE_OK);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    record(easy, result, arg);
    curl_easy_cleanup(easy);
}

static enum sn_err add(CURL *easy, curl_loop_done_fn done, void *arg)
{
    fx.in_add = 1;
    enum sn_err err = curl_loop_add(fx.loop, easy, done, arg);
    fx.in_add = 0;
    return err;
}

static void start(int i, const char *path, const char *body)
{
    ck_assert_int_eq(add(make_easy(path, body, &fx.xfers[i]), on_done, &fx.xfers[i]), SN_OK);
}

static int want_reported;
static int reported_enough(void)
{
    return fx.reported >= want_reported;
}

static void run_until_reported(int n)
{
    want_reported = n;
    char what[64];
    snprintf(what, sizeof(what), "%d transfers to report", n);
    run_until(reported_enough, what);
}

/* ---- the tests ---- */

START_TEST(test_concurrent_posts)
{
    enum { N = 50 };
    char body[32];
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof(body), "body-%d", i);
        start(i, "/echo", body);
    }
    ck_assert_uint_eq(curl_loop_running(fx.loop), N);
    run_until_reported(N);
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
    ck_assert_int_eq(fx.echo_unknown, 0);
    for (int i = 0; i < N; i++) {
        struct xfer *x = &fx.xfers[i];
        snprintf(body, sizeof(body), "body-%d", i);
        ck_assert_msg(x->done_calls == 1, "transfer %d: done called %d times, expected once", i,
                      x->done_calls);
        ck_assert_msg(x->result == CURLE_OK, "transfer %d: %s", i, curl_easy_strerror(x->result));
        ck_assert_msg(x->status == 200, "transfer %d: status %ld, expected 200", i, x->status);
        ck_assert_str_eq(x->body, body);
        ck_assert_msg(fx.echo_seen[i] == 1, "the server saw body-%d %d times, expected once", i,
                      fx.echo_seen[i]);
    }
}
END_TEST

static int events_before;
static int events_settled(void)
{
    /* what was there before, plus run_until()'s own deadline */
    return event_base_get_num_events(fx.base, EVENT_BASE_COUNT_ADDED) <= events_before + 1;
}

/* Connections that close leave no event behind on the base: each socket
 * curl stops watching is let go at once, not when the loop is freed. */
START_TEST(test_sockets_released)
{
    enum { N = 10 };
    events_before = event_base_get_num_events(fx.base, EVENT_BASE_COUNT_ADDED);
    for (int i = 0; i < N; i++) {
        CURL *easy = make_easy("/fast", NULL, &fx.xfers[i]);
        ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L), CURLE_OK);
        ck_assert_int_eq(add(easy, on_done, &fx.xfers[i]), SN_OK);
    }
    run_until_reported(N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(fx.xfers[i].status, 200);
    run_until(events_settled, "the events of closed connections to go");
}
END_TEST

/* Bodies far larger than a socket buffer: each side waits for its socket
 * many times over, so every readiness curl asked for must be delivered. */
START_TEST(test_large_bodies)
{
    enum { N = 2, SIZE = 8 * 1024 * 1024 };
    char *body = malloc(SIZE);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < SIZE; i++)
        body[i] = big_byte(i);
    for (int i = 0; i < N; i++) {
        CURL *easy = make_easy("/big", NULL, &fx.xfers[i]);
        ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)SIZE),
                         CURLE_OK);
        ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body), CURLE_OK);
        ck_assert_int_eq(add(easy, on_done, &fx.xfers[i]), SN_OK);
    }
    run_until_reported(N);
    free(body);
    ck_assert_uint_eq(fx.big_received, SIZE);
    for (int i = 0; i < N; i++) {
        struct xfer *x = &fx.xfers[i];
        ck_assert_msg(x->result == CURLE_OK && x->status == 200, "transfer %d: %s, status %ld", i,
                      curl_easy_strerror(x->result), x->status);
        ck_assert_msg(x->received == SIZE && x->mismatches == 0,
                      "transfer %d: %zu bytes back (%zu wrong), expected %d", i, x->received,
                      x->mismatches, SIZE);
    }
}
END_TEST

static int slow_arrived(void)
{
    return fx.slow_received > 0;
}

START_TEST(test_slow_blocks_nothing)
{
    enum { FAST = 20, SLOW = FAST };
    start(SLOW, "/slow", NULL);
    /* the fast transfers start while the slow one is certainly in flight */
    run_until(slow_arrived, "the slow request to reach the server");
    for (int i = 0; i < FAST; i++)
        start(i, "/fast", NULL);
    ck_assert_uint_eq(curl_loop_running(fx.loop), FAST + 1);
    run_until_reported(FAST + 1);
    for (int i = 0; i < FAST; i++) {
        struct xfer *x = &fx.xfers[i];
        ck_assert_msg(x->done_calls == 1 && x->result == CURLE_OK && x->status == 200,
                      "fast transfer %d: %d calls, %s, status %ld", i, x->done_calls,
                      curl_easy_strerror(x->result), x->status);
        ck_assert_str_eq(x->body, "fast");
        ck_assert_msg(x->order <= FAST,
                      "fast transfer %d was reported as number %d, after the slow", i, x->order);
    }
    struct xfer *slow = &fx.xfers[SLOW];
    ck_assert_int_eq(slow->done_calls, 1);
    ck_assert_int_eq(slow->result, CURLE_OK);
    ck_assert_int_eq(slow->status, 200);
    ck_assert_str_eq(slow->body, "slow");
    ck_assert_int_eq(slow->order, FAST + 1);
    ck_assert_int_eq(fx.slow_received, 1);
    ck_assert_int_eq(fx.slow_replied, 1);
}
END_TEST

START_TEST(test_timeout)
{
    CURL *easy = make_easy("/never", NULL, &fx.xfers[0]);
    ck_assert_int_eq(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 200L), CURLE_OK);
    ck_assert_int_eq(add(easy, on_done, &fx.xfers[0]), SN_OK);
    run_until_reported(1);
    ck_assert_int_eq(fx.never_received, 1);
    ck_assert_int_eq(fx.xfers[0].done_calls, 1);
    ck_assert_msg(fx.xfers[0].result == CURLE_OPERATION_TIMEDOUT, "expected a timeout, got %s",
                  curl_easy_strerror(fx.xfers[0].result));
    ck_assert_int_eq(fx.xfers[0].status, 0);
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
}
END_TEST

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int port = bound_port(fd);
    ck_assert_int_eq(close(fd), 0);
    return port;
}

START_TEST(test_connection_refused)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", closed_port());
    start(0, url, "body-0");
    /* a transfer that fails at once, before any socket: still reported
     * from the loop, not from curl_loop_add */
    start(1, "nosuchscheme://127.0.0.1/", NULL);
    ck_assert_int_eq(fx.reported, 0);
    run_until_reported(2);
    ck_assert_int_eq(fx.xfers[0].done_calls, 1);
    ck_assert_msg(fx.xfers[0].result == CURLE_COULDNT_CONNECT, "expected a refusal, got %s",
                  curl_easy_strerror(fx.xfers[0].result));
    ck_assert_int_eq(fx.xfers[0].status, 0);
    ck_assert_int_eq(fx.xfers[1].done_calls, 1);
    ck_assert_msg(fx.xfers[1].result == CURLE_UNSUPPORTED_PROTOCOL,
                  "expected an unsupported protocol, got %s",
                  curl_easy_strerror(fx.xfers[1].result));
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
}
END_TEST

/* Transfer 0 is retried with the same handle until it has run RETRIES + 1
 * times; its last done also starts a new transfer (1). */
enum { RETRIES = 3 };
static int attempts;

static void on_done_retry(CURL *easy, CURLcode result, void *arg)
{
    struct xfer *x = arg;
    record(easy, result, x);
    ck_assert_int_eq(result, CURLE_OK);
    ck_assert_int_eq(x->status, 200);
    if (++attempts <= RETRIES) {
        x->body_len = 0;
        ck_assert_int_eq(add(easy, on_done_retry, x), SN_OK);
        return;
    }
    curl_easy_cleanup(easy);
    start(1, "/echo", "body-1");
}

static int retries_over(void)
{
    return fx.xfers[1].done_calls > 0;
}

START_TEST(test_done_adds_transfers)
{
    ck_assert_int_eq(add(make_easy("/echo", "body-0", &fx.xfers[0]), on_done_retry, &fx.xfers[0]),
                     SN_OK);
    run_until(retries_over, "the retries and the follow-up transfer");
    ck_assert_int_eq(attempts, RETRIES + 1);
    ck_assert_int_eq(fx.xfers[0].done_calls, RETRIES + 1);
    ck_assert_int_eq(fx.echo_seen[0], RETRIES + 1);
    ck_assert_str_eq(fx.xfers[0].body, "body-0");
    ck_assert_int_eq(fx.xfers[1].done_calls, 1);
    ck_assert_int_eq(fx.xfers[1].result, CURLE_OK);
    ck_assert_int_eq(fx.xfers[1].status, 200);
    ck_assert_int_eq(fx.echo_seen[1], 1);
    ck_assert_str_eq(fx.xfers[1].body, "body-1");
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
}
END_TEST

/* Done of an aborted transfer: records, and tries a retry, which a loop
 * being freed must refuse (the caller keeps the handle). */
static void on_done_aborted(CURL *easy, CURLcode result, void *arg)
{
    record(easy, result, arg);
    ck_assert_int_eq(add(easy, on_done_aborted, arg), SN_ERR_UNAVAILABLE);
    curl_easy_cleanup(easy);
}

static int never_arrived;
static int nevers_arrived(void)
{
    return fx.never_received >= never_arrived;
}

START_TEST(test_free_aborts_in_flight)
{
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(
            add(make_easy("/never", NULL, &fx.xfers[i]), on_done_aborted, &fx.xfers[i]), SN_OK);
    never_arrived = N;
    run_until(nevers_arrived, "the requests to reach the server");
    ck_assert_int_eq(fx.reported, 0);
    ck_assert_uint_eq(curl_loop_running(fx.loop), N);
    curl_loop_free(fx.loop);
    /* done was called from inside curl_loop_free: nothing is left to run */
    for (int i = 0; i < N; i++) {
        struct xfer *x = &fx.xfers[i];
        ck_assert_msg(x->done_calls == 1, "transfer %d: done called %d times, expected once", i,
                      x->done_calls);
        ck_assert_msg(x->result == CURLE_ABORTED_BY_CALLBACK, "transfer %d: %s", i,
                      curl_easy_strerror(x->result));
    }
    ck_assert_int_eq(fx.reported, N);
    fx.loop = NULL;
    /* the server's side of the aborted connections closes without trouble */
    ck_assert_int_ge(event_base_loop(fx.base, EVLOOP_NONBLOCK), 0);
}
END_TEST

/* Transfer 0 finishes and its done frees the loop while transfer 1 hangs. */
static void on_done_free(CURL *easy, CURLcode result, void *arg)
{
    record(easy, result, arg);
    curl_easy_cleanup(easy);
    curl_loop_free(fx.loop);
    fx.loop = NULL;
}

static void on_done_after_free(CURL *easy, CURLcode result, void *arg)
{
    struct xfer *x = arg;
    ck_assert_msg(!fx.in_add, "done called from inside curl_loop_add (transfer %d)", x->id);
    x->done_calls++;
    x->result = result;
    x->order = ++fx.reported;
    curl_easy_cleanup(easy);
}

START_TEST(test_free_from_done)
{
    never_arrived = 1;
    ck_assert_int_eq(add(make_easy("/never", NULL, &fx.xfers[1]), on_done_after_free, &fx.xfers[1]),
                     SN_OK);
    run_until(nevers_arrived, "the hanging request to reach the server");
    ck_assert_int_eq(add(make_easy("/fast", NULL, &fx.xfers[0]), on_done_free, &fx.xfers[0]),
                     SN_OK);
    run_until_reported(2);
    ck_assert_ptr_null(fx.loop);
    ck_assert_int_eq(fx.xfers[0].done_calls, 1);
    ck_assert_int_eq(fx.xfers[0].result, CURLE_OK);
    ck_assert_int_eq(fx.xfers[0].order, 1);
    ck_assert_int_eq(fx.xfers[1].done_calls, 1);
    ck_assert_int_eq(fx.xfers[1].result, CURLE_ABORTED_BY_CALLBACK);
    ck_assert_int_eq(fx.xfers[1].order, 2);
    /* nothing of the loop is left on the base to fire */
    ck_assert_int_ge(event_base_loop(fx.base, EVLOOP_NONBLOCK), 0);
    ck_assert_int_eq(fx.reported, 2);
}
END_TEST

static char caller_private[] = "the caller's";

static void on_done_private(CURL *easy, CURLcode result, void *arg)
{
    void *p = NULL;
    ck_assert_int_eq(curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p), CURLE_OK);
    ck_assert_ptr_eq(p, caller_private);
    on_done(easy, result, arg);
}

START_TEST(test_running_counts)
{
    enum { N = 3 };
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
    CURL *easy[N];
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof(body), "body-%d", i);
        easy[i] = make_easy("/echo", body, &fx.xfers[i]);
        ck_assert_int_eq(curl_easy_setopt(easy[i], CURLOPT_PRIVATE, caller_private), CURLE_OK);
        ck_assert_int_eq(add(easy[i], on_done_private, &fx.xfers[i]), SN_OK);
        ck_assert_uint_eq(curl_loop_running(fx.loop), (size_t)i + 1);
    }
    /* the multi handle refuses a handle it already has: not counted, no
     * done (and the error it logs is expected: keep it off the output) */
    int devnull = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(devnull, 0);
    log_set_fd(devnull);
    enum sn_err err = add(easy[0], on_done_private, &fx.xfers[N]);
    log_set_fd(2);
    ck_assert_int_eq(close(devnull), 0);
    ck_assert_int_eq(err, SN_ERR_INVAL);
    ck_assert_uint_eq(curl_loop_running(fx.loop), N);
    run_until_reported(N);
    ck_assert_uint_eq(curl_loop_running(fx.loop), 0);
    ck_assert_int_eq(fx.xfers[N].done_calls, 0);
    /* each done sees itself already taken off the count */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
        struct xfer *x = &fx.xfers[i];
        ck_assert_int_eq(x->done_calls, 1);
        ck_assert_int_eq(x->status, 200);
        ck_assert_msg(x->running == (size_t)(N - x->order),
                      "transfer %d, reported as number %d, saw %zu running, expected %d", i,
                      x->order, x->running, N - x->order);
        seen[x->order - 1]++;
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
}
END_TEST

static Suite *curl_loop_suite(void)
{
    Suite *s = suite_create("curl_loop");
    TCase *tc = tcase_create("transfers");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_concurrent_posts);
    tcase_add_test(tc, test_sockets_released);
    tcase_add_test(tc, test_large_bodies);
    tcase_add_test(tc, test_slow_blocks_nothing);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_connection_refused);
    tcase_add_test(tc, test_done_adds_transfers);
    tcase_add_test(tc, test_free_aborts_in_flight);
    tcase_add_test(tc, test_free_from_done);
    tcase_add_test(tc, test_running_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_set_level(SN_LOG_WARN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(curl_loop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
