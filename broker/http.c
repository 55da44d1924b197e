#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "tls.h"

/* One client connection. evhttp has no hook for a connection it accepts, only
 * one that makes its bufferevent (evhttp_set_bevcb): the connection is
 * counted there, and set up by an event that runs right after evhttp is done
 * with the accept, once the evhttp_connection exists; its close callback ends
 * it. Found from a request through its socket (by_fd). */
struct http_conn {
    struct http_server *server;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until set up */
    evutil_socket_t fd;
    struct event *setup_ev;
    struct event *deadline_ev; /* armed while a request is awaited */
    int peer_known;            /* peer_subject worked out */
    char *peer_subject;        /* NULL: no client certificate */
    struct http_conn *prev, *next;
};

struct http_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    const struct http_route *routes;
    size_t nroutes;
    void *app;
    unsigned inflight;
    struct http_limits limits;
    SSL_CTX *tls; /* NULL: plain HTTP */
    struct ratelimit *rates;
    struct http_conn *conns; /* every connection, set up or not */
    unsigned nconns;
    double full_said_at; /* when max_connections was last said to be reached */
    struct http_conn **by_fd;
    size_t nby_fd;
};

double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *http_percent_decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

int http_route_match(const char *pattern, const char *path, char **params, int maxparams,
                     int *nparams)
{
    *nparams = 0;
    for (;;) {
        if (*pattern != '/' || *path != '/') break;
        pattern++;
        path++;
        size_t plen = strcspn(pattern, "/");
        size_t slen = strcspn(path, "/");
        if (plen > 1 && pattern[0] == '{' && pattern[plen - 1] == '}') {
            if (slen == 0 || *nparams >= maxparams) break;
            char *value = http_percent_decode(path, slen);
            if (strlen(value) == 0 || memmem(path, slen, "%00", 3)) { /* NUL would cut it */
                free(value);
                break;
            }
            params[(*nparams)++] = value;
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            break;
        }
        pattern += plen;
        path += slen;
        if (*pattern == '\0' && *path == '\0') return 1;
    }
    for (int i = 0; i < *nparams; i++)
        free(params[i]);
    *nparams = 0;
    return 0;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "OTHER";
}

static void request_free(struct http_request *r)
{
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    free(r);
}

void http_reply(struct http_request *r, int status, const char *content_type, const char *body,
                size_t len)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
    if (content_type) evhttp_add_header(headers, "Content-Type", content_type);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    struct evbuffer *buf = evbuffer_new();
    if (!buf) sn_oom(len);
    if (evbuffer_add(buf, body, len) != 0) sn_oom(len);
    evhttp_send_reply(r->req, status, NULL, buf);
    evbuffer_free(buf);

    const char *route = r->route ? r->route->pattern : "unmatched";
    char labels[256];
    double elapsed = http_now() - r->started_at;
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",code=\"%d\"", route,
             method_name(evhttp_request_get_command(r->req)), status);
    metrics_counter_add("sn_http_requests_total", labels, 1);
    snprintf(labels, sizeof(labels), "route=\"%s\"", route);
    metrics_histogram_observe("sn_http_request_duration_seconds", labels, elapsed);
    log_debug(json_pack("{s:s,s:s,s:i,s:f}", "method",
                        method_name(evhttp_request_get_command(r->req)), "route", route, "status",
                        status, "seconds", elapsed),
              "http request");

    if (r->on_reply) r->on_reply(r, status);
    r->server->inflight--;
    request_free(r);
}

void http_reply_json(struct http_request *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!text) sn_oom(0);
    http_reply(r, status, "application/json", text, strlen(text));
    free(text);
}

json_t *http_problem_new(int status, const char *title, const char *detail, json_t *extra)
{
    json_t *p = json_pack("{s:s,s:s,s:i}", "type", "about:blank", "title", title, "status", status);
    if (detail) json_object_set_new(p, "detail", json_string(detail));
    if (extra) {
        json_object_update(p, extra);
        json_decref(extra);
    }
    return p;
}

void http_reply_problem(struct http_request *r, int status, const char *title, const char *detail,
                        json_t *extra)
{
    json_t *p = http_problem_new(status, title, detail, extra);
    char *text = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    if (!text) sn_oom(0);
    http_reply(r, status, "application/problem+json", text, strlen(text));
    free(text);
}

void http_reply_unavailable(struct http_request *r, const char *detail)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
    http_reply_problem(r, 503, "Service Unavailable", detail, NULL);
}

json_t *http_body_json_or_reply(struct http_request *r)
{
    struct evbuffer *input = evhttp_request_get_input_buffer(r->req);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)evbuffer_pullup(input, -1), evbuffer_get_length(input),
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char detail[300];
        snprintf(detail, sizeof(detail), "malformed JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        http_reply_problem(r, 400, "Bad Request", detail, NULL);
    }
    return root;
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->fd >= 0 && (size_t)c->fd < s->nby_fd && s->by_fd[c->fd] == c) s->by_fd[c->fd] = NULL;
    s->nconns--;
    event_free(c->setup_ev);
    event_free(c->deadline_ev);
    free(c->peer_subject);
    free(c);
    metrics_gauge_set("sn_http_connections", "", (double)s->nconns);
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn_free(arg);
}

static void arm_deadline(struct http_conn *c)
{
    int64_t ms = c->server->limits.read_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->deadline_ev, &tv);
}

/* A request that has not arrived whole in time: a client sending a byte now
 * and then (slowloris) would hold the connection for ever, since evhttp's
 * read timeout starts again at every byte. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    (void)fd;
    (void)what;
    metrics_counter_add("sn_http_connections_closed_total", "reason=\"read_timeout\"", 1);
    log_debug(json_pack("{s:I}", "read_timeout_ms", (json_int_t)c->server->limits.read_timeout_ms),
              "closing a connection whose request did not arrive within http.read_timeout");
    evhttp_connection_free(c->evcon); /* its close callback frees c */
}

static void on_request_complete(struct evhttp_request *req, void *arg)
{
    (void)req;
    arm_deadline(arg); /* the reply is out: the next request must come in time */
}

static void remember_fd(struct http_server *s, struct http_conn *c)
{
    if (c->fd < 0) return;
    if ((size_t)c->fd >= s->nby_fd) {
        size_t n = s->nby_fd ? s->nby_fd : 64;
        while (n <= (size_t)c->fd)
            n *= 2;
        s->by_fd = xrealloc(s->by_fd, n * sizeof(struct http_conn *));
        memset(s->by_fd + s->nby_fd, 0, (n - s->nby_fd) * sizeof(struct http_conn *));
        s->nby_fd = n;
    }
    s->by_fd[c->fd] = c;
}

static void refuse(struct http_conn *c)
{
    struct http_server *s = c->server;
    metrics_counter_add("sn_http_connections_closed_total", "reason=\"max_connections\"", 1);
    double now = http_now();
    if (now - s->full_said_at >= 60) {
        s->full_said_at = now;
        log_warn(json_pack("{s:i}", "max_connections", s->limits.max_connections),
                 "http.max_connections reached: new connections are closed at once (said once "
                 "a minute)");
    }
    evhttp_connection_free(c->evcon); /* its close callback frees c */
}

/* Runs once evhttp has made the connection of c's bufferevent: evhttp's
 * event callback on it has the evhttp_connection for argument. */
static void on_setup(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    struct http_server *s = c->server;
    struct bufferevent *bev = c->bev;
    bufferevent_event_cb eventcb = NULL;
    void *evcon = NULL;
    (void)fd;
    (void)what;
    bufferevent_getcb(bev, NULL, NULL, &eventcb, &evcon);
    if (!eventcb || !evcon) { /* evhttp gave it up already */
        conn_free(c);
        bufferevent_decref(bev);
        return;
    }
    c->evcon = evcon;
    c->fd = bufferevent_getfd(bev);
    bufferevent_decref(bev); /* evhttp's reference keeps it */
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    if (s->limits.max_connections && s->nconns > s->limits.max_connections) {
        refuse(c);
        return;
    }
    remember_fd(s, c);
    arm_deadline(c);
}

/* evhttp's bufferevent callback: every accepted connection passes here. */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    struct http_server *s = arg;
    struct bufferevent *bev;
    if (s->tls) {
        SSL *ssl = SSL_new(s->tls);
        if (!ssl) sn_oom(0);
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        /* a client that closes without close_notify ends its connection, as over TCP */
        if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) sn_oom(0);
    struct http_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    c->bev = bev;
    c->fd = -1;
    c->setup_ev = event_new(base, -1, 0, on_setup, c);
    c->deadline_ev = evtimer_new(base, on_deadline, c);
    if (!c->setup_ev || !c->deadline_ev) sn_oom(0);
    bufferevent_incref(bev); /* valid when on_setup runs, whatever evhttp did */
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    metrics_gauge_set("sn_http_connections", "", (double)s->nconns);
    /* runs in this turn of the loop, after the listener's callback returns:
     * before any read on the new socket */
    event_active(c->setup_ev, EV_TIMEOUT, 1);
    return bev;
}

static struct http_conn *conn_of(const struct http_server *s, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon) return NULL;
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    if (fd < 0 || (size_t)fd >= s->nby_fd) return NULL;
    struct http_conn *c = s->by_fd[fd];
    return c && c->evcon == evcon ? c : NULL;
}

/* The request line and headers as they came, near enough: what
 * max_header_size bounds. */
static size_t request_head_size(struct evhttp_request *req)
{
    size_t n = strlen(evhttp_request_get_uri(req)) + sizeof("OPTIONS  HTTP/1.1\r\n\r\n");
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = headers->tqh_first; kv; kv = kv->next.tqe_next)
        n += strlen(kv->key) + strlen(kv->value) + 4;
    return n;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct http_server *s = arg;
    struct http_request *r = xcalloc(1, sizeof(*r));
    r->req = req;
    r->server = s;
    r->app = s->app;
    r->started_at = http_now();
    s->inflight++;

    struct http_conn *c = conn_of(s, req);
    if (c) {
        evtimer_del(c->deadline_ev); /* it arrived: the handler takes its time */
        evhttp_request_set_on_complete_cb(req, on_request_complete, c);
    }
    size_t head = request_head_size(req);
    if (head > s->limits.max_header_size) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "the request line and headers take about %zu bytes; at most %zu are accepted "
                 "(http.max_header_size)",
                 head, s->limits.max_header_size);
        http_reply_problem(r, 431, "Request Header Fields Too Large", detail, NULL);
        return;
    }

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path) path = "/";
    const char *method = method_name(evhttp_request_get_command(req));

    char allow[128] = "";
    const struct http_route *path_match = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct http_route *route = &s->routes[i];
        char *params[HTTP_MAX_PARAMS];
        int n;
        if (!http_route_match(route->pattern, path, params, HTTP_MAX_PARAMS, &n)) continue;
        if (strcmp(route->method, method) != 0) {
            for (int j = 0; j < n; j++)
                free(params[j]);
            path_match = route;
            if (!strstr(allow, route->method)) {
                size_t off = strlen(allow);
                snprintf(allow + off, sizeof(allow) - off, "%s%s", off ? ", " : "", route->method);
            }
            continue;
        }
        r->route = route;
        memcpy(r->params, params, sizeof(params[0]) * (size_t)n);
        r->nparams = n;
        route->handler(r);
        return;
    }
    if (allow[0]) {
        char detail[256];
        r->route = path_match; /* counted under the route whose path matched */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        snprintf(detail, sizeof(detail), "%s is not allowed on %s; allowed: %s", method, path,
                 allow);
        http_reply_problem(r, 405, "Method Not Allowed", detail, NULL);
        return;
    }
    http_reply_problem(r, 404, "Not Found", "no such route", NULL);
}

struct http_server *http_server_new(struct event_base *base, const struct http_route *routes,
                                    size_t nroutes, size_t max_body_size, void *app)
{
    struct http_server *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->routes = routes;
    s->nroutes = nroutes;
    s->app = app;
    s->http = evhttp_new(base);
    if (!s->http) sn_oom(0);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    /* bodies up to 4 times the limit are read and refused with a problem
     * document; past that libevent refuses them itself */
    evhttp_set_max_body_size(s->http, max_body_size * 4);
    evhttp_set_gencb(s->http, dispatch, s);
    evhttp_set_bevcb(s->http, on_accept, s);
    metrics_register("sn_http_requests_total", METRIC_COUNTER,
                     "HTTP requests answered, by route, method and status code");
    metrics_register("sn_http_request_duration_seconds", METRIC_HISTOGRAM,
                     "Time from request received to reply sent, by route");
    metrics_register("sn_http_connections", METRIC_GAUGE, "Open HTTP client connections");
    metrics_register("sn_http_connections_closed_total", METRIC_COUNTER,
                     "HTTP connections the broker closed: over http.max_connections, or a "
                     "request not arrived within http.read_timeout");
    metrics_gauge_set("sn_http_connections", "", 0);
    const struct http_limits defaults = {0, 30000, 16 * 1024, 0, 0};
    http_server_set_limits(s, &defaults);
    return s;
}

void http_server_set_limits(struct http_server *s, const struct http_limits *limits)
{
    s->limits = *limits;
    struct timeval tv = {(time_t)(limits->read_timeout_ms / 1000),
                         (suseconds_t)((limits->read_timeout_ms % 1000) * 1000)};
    evhttp_set_timeout_tv(s->http, &tv);
    /* headers up to 4 times the limit reach dispatch(), which answers 431;
     * past that libevent answers 400 itself */
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)(limits->max_header_size * 4));
    ratelimit_free(s->rates);
    s->rates = limits->rate_limit
                   ? ratelimit_new(limits->rate_limit, limits->rate_burst ? limits->rate_burst : 1)
                   : NULL;
}

void http_server_set_tls(struct http_server *s, SSL_CTX *ctx)
{
    SSL_CTX_free(s->tls);
    s->tls = ctx;
}

const char *http_request_peer_subject(struct http_request *r)
{
    if (!r->server->tls) return NULL;
    struct http_conn *c = conn_of(r->server, r->req);
    if (!c) return NULL;
    if (!c->peer_known) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        c->peer_subject = ssl ? tls_peer_subject(ssl) : NULL;
        c->peer_known = 1;
    }
    return c->peer_subject;
}

int http_rate_limit_or_reply(struct http_request *r, const char *caller)
{
    struct http_server *s = r->server;
    unsigned retry_after = 1;
    if (!s->rates || ratelimit_take(s->rates, caller, http_now(), &retry_after)) return 1;
    char value[16], detail[200];
    snprintf(value, sizeof(value), "%u", retry_after);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", value);
    snprintf(detail, sizeof(detail),
             "over %u requests per second (bursts of %u) with these credentials "
             "(http.rate_limit); retry in %u s",
             s->limits.rate_limit, s->limits.rate_burst, retry_after);
    http_reply_problem(r, 429, "Too Many Requests", detail, NULL);
    return 0;
}

enum sn_err http_server_listen(struct http_server *s, const char *address, char *bound,
                               size_t boundlen)
{
    char host[256];
    int port;
    if (conf_parse_address(address, host, sizeof(host), &port) != 0) return SN_ERR_INVAL;
    s->listener = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!s->listener) return SN_ERR_IO;
    struct sockaddr_storage ss = {0};
    socklen_t sslen = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->listener);
    char ip[NI_MAXHOST], service[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sslen, ip, sizeof(ip), service, sizeof(service),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return SN_ERR_IO;
    snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, service);
    return SN_OK;
}

void http_server_stop_accepting(struct http_server *s)
{
    if (!s->listener) return;
    evhttp_del_accept_socket(s->http, s->listener);
    s->listener = NULL;
}

unsigned http_server_inflight(const struct http_server *s)
{
    return s->inflight;
}

void http_server_free(struct http_server *s)
{
    if (!s) return;
    evhttp_free(s->http); /* the connections set up end through their close callback */
    for (struct http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        struct bufferevent *bev = c->evcon ? NULL : c->bev; /* not set up: still ours */
        conn_free(c);
        if (bev) bufferevent_decref(bev);
    }
    free(s->by_fd);
    ratelimit_free(s->rates);
    SSL_CTX_free(s->tls);
    free(s);
}

const char *http_query_repeated(const struct evkeyvalq *params)
{
    for (const struct evkeyval *kv = params->tqh_first; kv; kv = kv->next.tqe_next)
        if (evhttp_find_header(params, kv->key) != kv->value) return kv->key;
    return NULL;
}

int http_query_or_reply(struct http_request *r, const char *const *allowed,
                        struct evkeyvalq *params)
{
    TAILQ_INIT(params);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (query && evhttp_parse_query_str(query, params) != 0) {
        evhttp_clear_headers(params);
        http_reply_problem(r, 400, "Bad Request", "the query string cannot be parsed", NULL);
        return 0;
    }
    for (struct evkeyval *kv = params->tqh_first; kv; kv = kv->next.tqe_next) {
        int known = 0;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], kv->key) == 0;
        if (known) continue;
        char names[512] = "";
        for (size_t i = 0; allowed[i]; i++) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "", allowed[i]);
        }
        json_t *errors = json_pack("[{s:s,s:s+}]", "parameter", kv->key, "message",
                                   "unknown parameter; allowed: ", names);
        evhttp_clear_headers(params);
        http_reply_problem(r, 400, "Bad Request", "unknown query parameter",
                           json_pack("{s:o}", "errors", errors));
        return 0;
    }
    return 1;
}

void http_reply_bad_parameter(struct http_request *r, const char *name, const char *message)
{
    http_reply_problem(
        r, 400, "Bad Request", message,
        json_pack("{s:[{s:s,s:s}]}", "errors", "parameter", name, "message", message));
}
