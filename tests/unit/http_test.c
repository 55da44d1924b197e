/* http: route matching, problem documents, and a real server on the loop
 * talked to with libevent's own HTTP client. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%.3000s", (needle),    \
                  (haystack))

static void free_params(char **params, int n)
{
    for (int i = 0; i < n; i++)
        free(params[i]);
}

/* ---- http_route_match ---- */

START_TEST(test_match_exact)
{
    char *params[HTTP_MAX_PARAMS];
    int n = -1;
    ck_assert_int_eq(http_route_match("/readyz", "/readyz", params, HTTP_MAX_PARAMS, &n), 1);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match("/v1/events", "/v1/events", params, HTTP_MAX_PARAMS, &n), 1);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match("/", "/", params, HTTP_MAX_PARAMS, &n), 1);
    ck_assert_int_eq(n, 0);

    ck_assert_int_eq(http_route_match("/readyz", "/healthz", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(http_route_match("/readyz", "/ready", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(http_route_match("/ready", "/readyz", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(http_route_match("/readyz", "/Readyz", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(http_route_match("/", "/readyz", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(http_route_match("/readyz", "", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_match_captures)
{
    char *params[HTTP_MAX_PARAMS];
    int n = -1;
    int rc = http_route_match("/v1/reviews/{jurisdiction}/{review_id}", "/v1/reviews/US%2DTN/r-17",
                              params, HTTP_MAX_PARAMS, &n);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(params[0], "US-TN");
    ck_assert_str_eq(params[1], "r-17");
    free_params(params, n);

    rc = http_route_match("/x/{a}", "/x/%41%62c%2Fd%20e", params, HTTP_MAX_PARAMS, &n);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(params[0], "Abc/d e");
    free_params(params, n);

    /* malformed escapes stay as they are */
    rc = http_route_match("/x/{a}", "/x/100%zz%4", params, HTTP_MAX_PARAMS, &n);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(params[0], "100%zz%4");
    free_params(params, n);

    rc = http_route_match("/x/{a}", "/x/%2", params, HTTP_MAX_PARAMS, &n);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(params[0], "%2");
    free_params(params, n);

    /* an escape at the very end of the segment */
    rc = http_route_match("/x/{a}/y", "/x/a%2D/y", params, HTTP_MAX_PARAMS, &n);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(params[0], "a-");
    free_params(params, n);
}
END_TEST

START_TEST(test_match_mismatches)
{
    char *params[HTTP_MAX_PARAMS];
    int n = -1;
    const char *pattern = "/v1/reviews/{jurisdiction}/{review_id}";
    /* trailing slash */
    ck_assert_int_eq(http_route_match(pattern, "/v1/reviews/US/1/", params, HTTP_MAX_PARAMS, &n),
                     0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match("/readyz", "/readyz/", params, HTTP_MAX_PARAMS, &n), 0);
    /* extra segment */
    ck_assert_int_eq(http_route_match(pattern, "/v1/reviews/US/1/x", params, HTTP_MAX_PARAMS, &n),
                     0);
    ck_assert_int_eq(n, 0);
    /* missing segment */
    ck_assert_int_eq(http_route_match(pattern, "/v1/reviews/US", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(n, 0);
    /* an empty segment does not fill a {param} */
    ck_assert_int_eq(http_route_match(pattern, "/v1/reviews//1", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match(pattern, "/v1/reviews/US/", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match("/x/{a}", "/x/", params, HTTP_MAX_PARAMS, &n), 0);
    /* literal segment after a capture */
    ck_assert_int_eq(http_route_match("/x/{a}/y", "/x/1/z", params, HTTP_MAX_PARAMS, &n), 0);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_match_too_many_params)
{
    char *params[2];
    int n = -1;
    ck_assert_int_eq(http_route_match("/{a}/{b}/{c}", "/1/2/3", params, 2, &n), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(http_route_match("/{a}/{b}", "/1/2", params, 2, &n), 1);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(params[0], "1");
    ck_assert_str_eq(params[1], "2");
    free_params(params, n);
}
END_TEST

/* ---- http_problem_new ---- */

START_TEST(test_problem)
{
    json_t *p = http_problem_new(404, "Not Found", "no such route", NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(json_string_value(json_object_get(p, "type")), "about:blank");
    ck_assert_str_eq(json_string_value(json_object_get(p, "title")), "Not Found");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "status")), 404);
    ck_assert_str_eq(json_string_value(json_object_get(p, "detail")), "no such route");
    ck_assert_int_eq(json_object_size(p), 4);
    json_decref(p);

    p = http_problem_new(503, "Service Unavailable", NULL, NULL);
    ck_assert_ptr_null(json_object_get(p, "detail"));
    ck_assert_int_eq(json_integer_value(json_object_get(p, "status")), 503);
    ck_assert_int_eq(json_object_size(p), 3);
    json_decref(p);
}
END_TEST

START_TEST(test_problem_extra_members)
{
    json_t *extra = json_pack("{s:[{s:s}],s:s}", "errors", "path", "/subject", "type",
                              "https://example.org/problems/validation");
    json_t *p = http_problem_new(422, "Unprocessable Content", "invalid event", extra);
    ck_assert_str_eq(json_string_value(json_object_get(p, "type")),
                     "https://example.org/problems/validation");
    ck_assert_str_eq(json_string_value(json_object_get(p, "title")), "Unprocessable Content");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "status")), 422);
    ck_assert_str_eq(json_string_value(json_object_get(p, "detail")), "invalid event");
    json_t *errors = json_object_get(p, "errors");
    ck_assert_msg(json_is_array(errors) && json_array_size(errors) == 1, "errors not merged");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "path")),
                     "/subject");
    json_decref(p);
}
END_TEST

/* ---- the server ---- */

struct reply {
    int done;
    int status;
    char content_type[128];
    char allow[128];
    char cache_control[64];
    char body[2048];
};

struct server_test {
    struct event_base *base;
    struct http_server *server;
    int pending;
    unsigned inflight_in_handler;
};

static struct server_test *current;

static void handle_hello(struct http_request *r)
{
    json_t *body = json_pack("{s:s,s:b}", "hello", "world", "app", r->app == current);
    http_reply_json(r, 200, body);
}

static void handle_item(struct http_request *r)
{
    json_t *params = json_array();
    for (int i = 0; i < r->nparams; i++)
        json_array_append_new(params, json_string(r->params[i]));
    http_reply_json(r, 200, json_pack("{s:s,s:o}", "route", r->route->pattern, "params", params));
}

static void handle_delete(struct http_request *r)
{
    http_reply(r, 204, "text/plain", "", 0);
}

static void deferred_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_request *r = arg;
    http_reply(r, 202, "text/plain", "later", 5);
}

/* Answers from a timer, as a handler waiting on the database would. */
static void handle_slow(struct http_request *r)
{
    current->inflight_in_handler = http_server_inflight(r->server);
    struct timeval tv = {0, 50 * 1000};
    ck_assert_int_eq(event_base_once(current->base, -1, EV_TIMEOUT, deferred_reply, r, &tv), 0);
}

/* Replies with the length of the body it got. */
static void handle_echo_length(struct http_request *r)
{
    char text[32];
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(r->req));
    snprintf(text, sizeof(text), "%zu", len);
    http_reply(r, 200, "text/plain", text, strlen(text));
}

static const struct http_route test_routes[] = {
    {"GET", "/hello", handle_hello},
    {"GET", "/items/{id}", handle_item},
    {"DELETE", "/items/{id}", handle_delete},
    {"GET", "/slow", handle_slow},
    {"POST", "/echo-length", handle_echo_length},
};

#define TEST_MAX_BODY 1024

static void copy_header(struct evhttp_request *req, const char *name, char *out, size_t len)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(out, len, "%s", v ? v : "");
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct reply *rep = arg;
    rep->done = 1;
    if (req) {
        rep->status = evhttp_request_get_response_code(req);
        copy_header(req, "Content-Type", rep->content_type, sizeof(rep->content_type));
        copy_header(req, "Allow", rep->allow, sizeof(rep->allow));
        copy_header(req, "Cache-Control", rep->cache_control, sizeof(rep->cache_control));
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        if (n >= sizeof(rep->body)) n = sizeof(rep->body) - 1;
        evbuffer_remove(in, rep->body, n);
        rep->body[n] = '\0';
    }
    if (--current->pending == 0) event_base_loopbreak(current->base);
}

static void request(struct evhttp_connection *conn, enum evhttp_cmd_type cmd, const char *uri,
                    struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct evhttp_request *req = evhttp_request_new(on_response, rep);
    ck_assert_ptr_nonnull(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    ck_assert_int_eq(evhttp_make_request(conn, req, cmd, uri), 0);
    current->pending++;
}

static void request_with_body(struct evhttp_connection *conn, const char *uri, size_t len,
                              struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct evhttp_request *req = evhttp_request_new(on_response, rep);
    ck_assert_ptr_nonnull(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    char *body = malloc(len);
    ck_assert_ptr_nonnull(body);
    memset(body, 'x', len);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    free(body);
    ck_assert_int_eq(evhttp_make_request(conn, req, EVHTTP_REQ_POST, uri), 0);
    current->pending++;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until every request is answered or 10 s pass. */
static void run_until_answered(void)
{
    struct event *deadline = evtimer_new(current->base, on_deadline, current->base);
    struct timeval tv = {10, 0};
    evtimer_add(deadline, &tv);
    event_base_dispatch(current->base);
    event_free(deadline);
    ck_assert_msg(current->pending == 0, "%d requests were not answered within 10 s",
                  current->pending);
}

static int port_of(const char *bound)
{
    const char *colon = strrchr(bound, ':');
    ck_assert_msg(colon != NULL, "bound address has no port: %s", bound);
    return atoi(colon + 1);
}

static struct server_test st;

static void server_setup(void)
{
    memset(&st, 0, sizeof(st));
    current = &st;
    st.base = event_base_new();
    ck_assert_ptr_nonnull(st.base);
    st.server =
        http_server_new(st.base, test_routes, SN_ARRAY_LEN(test_routes), TEST_MAX_BODY, &st);
    ck_assert_ptr_nonnull(st.server);
}

static void server_teardown(void)
{
    http_server_free(st.server);
    event_base_free(st.base);
    metrics_reset();
    current = NULL;
}

static json_t *parse_body(const struct reply *rep)
{
    json_error_t jerr;
    json_t *body = json_loads(rep->body, 0, &jerr);
    ck_assert_msg(body != NULL, "body is not JSON (%s): %s", jerr.text, rep->body);
    return body;
}

START_TEST(test_server_routes)
{
    char bound[300] = "";
    ck_assert_int_eq(http_server_listen(st.server, "127.0.0.1:0", bound, sizeof(bound)), SN_OK);
    ck_assert_msg(strncmp(bound, "127.0.0.1:", 10) == 0, "bound address: %s", bound);
    int port = port_of(bound);
    ck_assert_msg(port > 0 && port <= 65535, "port 0 should be replaced by the port bound: %s",
                  bound);

    struct evhttp_connection *conn =
        evhttp_connection_base_new(st.base, NULL, "127.0.0.1", (ev_uint16_t)port);
    ck_assert_ptr_nonnull(conn);
    struct reply hello, item, notfound, slash, post, post_item, del;
    request(conn, EVHTTP_REQ_GET, "/hello", &hello);
    request(conn, EVHTTP_REQ_GET, "/items/US%2DTN?x=1", &item);
    request(conn, EVHTTP_REQ_GET, "/nope", &notfound);
    request(conn, EVHTTP_REQ_GET, "/hello/", &slash);
    request(conn, EVHTTP_REQ_POST, "/hello", &post);
    request(conn, EVHTTP_REQ_POST, "/items/1", &post_item);
    request(conn, EVHTTP_REQ_DELETE, "/items/1", &del);
    run_until_answered();
    evhttp_connection_free(conn);

    ck_assert_int_eq(hello.status, 200);
    ck_assert_str_eq(hello.content_type, "application/json");
    ck_assert_str_eq(hello.cache_control, "no-store");
    ck_assert_str_eq(hello.body, "{\"hello\":\"world\",\"app\":true}");

    ck_assert_int_eq(item.status, 200);
    ck_assert_str_eq(item.body, "{\"route\":\"/items/{id}\",\"params\":[\"US-TN\"]}");

    ck_assert_int_eq(notfound.status, 404);
    ck_assert_str_eq(notfound.content_type, "application/problem+json");
    json_t *body = parse_body(&notfound);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "status")), 404);
    ck_assert_str_eq(json_string_value(json_object_get(body, "type")), "about:blank");
    ck_assert_str_eq(json_string_value(json_object_get(body, "title")), "Not Found");
    json_decref(body);
    ck_assert_contains(notfound.body, "\"status\":404");

    ck_assert_int_eq(slash.status, 404);

    ck_assert_int_eq(post.status, 405);
    ck_assert_str_eq(post.allow, "GET");
    ck_assert_str_eq(post.content_type, "application/problem+json");
    body = parse_body(&post);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "status")), 405);
    ck_assert_contains(json_string_value(json_object_get(body, "detail")), "POST");
    json_decref(body);

    ck_assert_int_eq(post_item.status, 405);
    ck_assert_str_eq(post_item.allow, "GET, DELETE");

    ck_assert_int_eq(del.status, 204);

    ck_assert_int_eq(http_server_inflight(st.server), 0);

    char *text = metrics_render();
    ck_assert_contains(text, "# TYPE sn_http_requests_total counter\n");
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"/hello\",method=\"GET\",code=\"200\"} 1\n");
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"/items/{id}\",method=\"GET\",code=\"200\"} 1\n");
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 2\n");
    /* a 405 is counted under the route whose path matched */
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"/hello\",method=\"POST\",code=\"405\"} 1\n");
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"/items/{id}\",method=\"POST\",code=\"405\"} 1\n");
    ck_assert_contains(
        text, "\nsn_http_requests_total{route=\"/items/{id}\",method=\"DELETE\",code=\"204\"} 1\n");
    ck_assert_contains(text, "# TYPE sn_http_request_duration_seconds histogram\n");
    /* the GET and the refused POST of /hello */
    ck_assert_contains(text, "\nsn_http_request_duration_seconds_count{route=\"/hello\"} 2\n");
    ck_assert_contains(
        text, "\nsn_http_request_duration_seconds_bucket{route=\"/hello\",le=\"+Inf\"} 2\n");
    free(text);
}
END_TEST

START_TEST(test_server_deferred_reply)
{
    char bound[300];
    ck_assert_int_eq(http_server_listen(st.server, "127.0.0.1:0", bound, sizeof(bound)), SN_OK);
    struct evhttp_connection *conn =
        evhttp_connection_base_new(st.base, NULL, "127.0.0.1", (ev_uint16_t)port_of(bound));
    struct reply slow;
    request(conn, EVHTTP_REQ_GET, "/slow", &slow);
    run_until_answered();
    evhttp_connection_free(conn);
    ck_assert_int_eq(st.inflight_in_handler, 1);
    ck_assert_int_eq(slow.status, 202);
    ck_assert_str_eq(slow.body, "later");
    ck_assert_str_eq(slow.content_type, "text/plain");
    ck_assert_int_eq(http_server_inflight(st.server), 0);
}
END_TEST

/* Bodies up to 4 times max_body_size reach the handler (which answers 413
 * itself); libevent refuses larger ones before any handler runs. */
START_TEST(test_server_body_limit)
{
    char bound[300];
    ck_assert_int_eq(http_server_listen(st.server, "127.0.0.1:0", bound, sizeof(bound)), SN_OK);
    int port = port_of(bound);
    struct evhttp_connection *conn =
        evhttp_connection_base_new(st.base, NULL, "127.0.0.1", (ev_uint16_t)port);
    struct reply small, within;
    request_with_body(conn, "/echo-length", 100, &small);
    request_with_body(conn, "/echo-length", 4 * TEST_MAX_BODY, &within);
    run_until_answered();
    evhttp_connection_free(conn);
    ck_assert_int_eq(small.status, 200);
    ck_assert_str_eq(small.body, "100");
    ck_assert_int_eq(within.status, 200);
    ck_assert_str_eq(within.body, "4096");

    conn = evhttp_connection_base_new(st.base, NULL, "127.0.0.1", (ev_uint16_t)port);
    struct reply too_big;
    request_with_body(conn, "/echo-length", 4 * TEST_MAX_BODY + 1, &too_big);
    run_until_answered();
    evhttp_connection_free(conn);
    ck_assert_msg(too_big.status == 413, "a body over 4 x max_body_size: expected 413, got %d: %s",
                  too_big.status, too_big.body);
}
END_TEST

START_TEST(test_server_stop_accepting)
{
    char bound[300];
    ck_assert_int_eq(http_server_listen(st.server, "127.0.0.1:0", bound, sizeof(bound)), SN_OK);
    int port = port_of(bound);
    http_server_stop_accepting(st.server);
    http_server_stop_accepting(st.server); /* twice is harmless */
    struct evhttp_connection *conn =
        evhttp_connection_base_new(st.base, NULL, "127.0.0.1", (ev_uint16_t)port);
    evhttp_connection_set_retries(conn, 0);
    struct reply rep;
    request(conn, EVHTTP_REQ_GET, "/hello", &rep);
    run_until_answered();
    evhttp_connection_free(conn);
    ck_assert_int_eq(rep.done, 1);
    ck_assert_msg(rep.status != 200, "a server that stopped accepting answered %d", rep.status);
}
END_TEST

START_TEST(test_server_listen_errors)
{
    char bound[300] = "";
    ck_assert_int_eq(http_server_listen(st.server, "localhost", bound, sizeof(bound)),
                     SN_ERR_INVAL);
    ck_assert_int_eq(http_server_listen(st.server, "127.0.0.1:0", bound, sizeof(bound)), SN_OK);
    /* the same port again, from a second server: in use */
    struct http_server *other = http_server_new(st.base, test_routes, 1, TEST_MAX_BODY, NULL);
    char again[300];
    ck_assert_int_eq(http_server_listen(other, bound, again, sizeof(again)), SN_ERR_IO);
    http_server_free(other);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("route_match");
    tcase_add_test(tc, test_match_exact);
    tcase_add_test(tc, test_match_captures);
    tcase_add_test(tc, test_match_mismatches);
    tcase_add_test(tc, test_match_too_many_params);
    suite_add_tcase(s, tc);

    tc = tcase_create("problem");
    tcase_add_test(tc, test_problem);
    tcase_add_test(tc, test_problem_extra_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("server");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, server_setup, server_teardown);
    tcase_add_test(tc, test_server_routes);
    tcase_add_test(tc, test_server_deferred_reply);
    tcase_add_test(tc, test_server_body_limit);
    tcase_add_test(tc, test_server_stop_accepting);
    tcase_add_test(tc, test_server_listen_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_set_level(SN_LOG_WARN);
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
