#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <ctype.h>
#include <event2/buffer.h>
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

struct http_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    const struct http_route *routes;
    size_t nroutes;
    void *app;
    unsigned inflight;
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

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct http_server *s = arg;
    struct http_request *r = xcalloc(1, sizeof(*r));
    r->req = req;
    r->server = s;
    r->app = s->app;
    r->started_at = http_now();
    s->inflight++;

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
    evhttp_set_timeout(s->http, 60);
    /* bodies up to 4 times the limit are read and refused with a problem
     * document; past that libevent refuses them itself */
    evhttp_set_max_body_size(s->http, max_body_size * 4);
    evhttp_set_gencb(s->http, dispatch, s);
    metrics_register("sn_http_requests_total", METRIC_COUNTER,
                     "HTTP requests answered, by route, method and status code");
    metrics_register("sn_http_request_duration_seconds", METRIC_HISTOGRAM,
                     "Time from request received to reply sent, by route");
    return s;
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
    evhttp_free(s->http);
    free(s);
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
