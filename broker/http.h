/* The HTTP server on the event loop: routes, per-request context, replies
 * (problem+json for every error, RFC 9457) and request metrics. */
#ifndef SN_HTTP_H
#define SN_HTTP_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "sn.h"

#define HTTP_MAX_PARAMS 4

struct http_server;
struct http_request;

typedef void (*http_handler_fn)(struct http_request *r);

struct http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/reviews/{jurisdiction}/{review_id}" */
    http_handler_fn handler;
};

/* One request in flight. A handler answers it exactly once with one of the
 * http_reply*() functions, at once or later from a callback; the reply frees it. */
struct http_request {
    struct evhttp_request *req;
    struct http_server *server;
    const struct http_route *route;
    void *app; /* the pointer given to http_server_new() */
    char *params[HTTP_MAX_PARAMS];
    int nparams;
    double started_at;
    /* set by a handler that runs route->handler again for the same request
     * once something it waited for is there (routes.c: a token lookup) */
    int rerun;
    /* Called by the reply once it is sent, before the request is freed,
     * with its status (audit.c records the call there); it owns
     * on_reply_arg, and must not touch req (libevent frees it at once when
     * the client has gone). */
    void (*on_reply)(struct http_request *r, int status);
    void *on_reply_arg;
};

/* routes must outlive the server. */
struct http_server *http_server_new(struct event_base *base, const struct http_route *routes,
                                    size_t nroutes, size_t max_body_size, void *app);
/* Binds address ("host:port"; port 0 picks one) and writes the address actually
 * bound as host:port into bound. */
enum sn_err http_server_listen(struct http_server *s, const char *address, char *bound,
                               size_t boundlen);
/* Closes the listening socket; requests in flight go on. */
void http_server_stop_accepting(struct http_server *s);
unsigned http_server_inflight(const struct http_server *s);
void http_server_free(struct http_server *s);

/* What one client may hold and send. */
struct http_limits {
    /* open connections at most; the next one is closed as soon as it is
     * accepted (evhttp cannot answer before it has read a request); 0: none */
    unsigned max_connections;
    /* a request, headers and body, must arrive whole within this of its
     * connection opening or of the previous reply (a slow client is cut);
     * also how long an idle connection stays open */
    int64_t read_timeout_ms;
    /* request line and headers: over it 431; over 4 times it libevent answers
     * 400 and closes the connection before any handler runs */
    size_t max_header_size;
    /* requests per second per caller (http_rate_limit_or_reply); 0: none */
    unsigned rate_limit;
    unsigned rate_burst; /* requests at once above the rate */
};

/* Until called: no connection or rate limit, read_timeout 30 s,
 * max_header_size 16 KiB. Before http_server_listen. */
void http_server_set_limits(struct http_server *s, const struct http_limits *limits);
/* Connections handshake TLS with ctx from then on; the server owns ctx.
 * Before http_server_listen. */
void http_server_set_tls(struct http_server *s, SSL_CTX *ctx);
/* The subject (RFC 2253) of the verified certificate the client of r's
 * connection presented; NULL over plain HTTP or without one. Worked out at
 * the connection's first request, kept for the next. */
const char *http_request_peer_subject(struct http_request *r);
/* Counts a request of caller (a token's or certificate's key) against
 * rate_limit; over it replies 429 with Retry-After and returns 0. */
int http_rate_limit_or_reply(struct http_request *r, const char *caller);

/* Matches path against pattern segment by segment; each {name} segment
 * captures its percent-decoded value into params (the caller frees them).
 * Returns 1 on a match, 0 otherwise. */
int http_route_match(const char *pattern, const char *path, char **params, int maxparams,
                     int *nparams);

/* content_type may be NULL (a reply without a body, 204). */
void http_reply(struct http_request *r, int status, const char *content_type, const char *body,
                size_t len);
/* body is stolen. */
void http_reply_json(struct http_request *r, int status, json_t *body);
/* An RFC 9457 problem: type about:blank unless extra sets one; extra (stolen,
 * may be NULL) adds members such as "errors". */
void http_reply_problem(struct http_request *r, int status, const char *title, const char *detail,
                        json_t *extra);
/* 503 with Retry-After: 1: a dependency (the database) is unavailable; the
 * client may retry. */
void http_reply_unavailable(struct http_request *r, const char *detail);
/* The problem document http_reply_problem() sends; the caller decrefs. */
json_t *http_problem_new(int status, const char *title, const char *detail, json_t *extra);

/* The request body parsed as JSON (duplicate keys refused); on malformed JSON
 * replies 400 with the line and column and returns NULL. The caller decrefs. */
json_t *http_body_json_or_reply(struct http_request *r);
/* Percent-decodes len bytes of s; the caller frees. */
char *http_percent_decode(const char *s, size_t len);

/* Parses the request's query string into params (the caller frees them with
 * evhttp_clear_headers) and checks that every name is one of allowed
 * (NULL-terminated); else replies 400 naming the parameter and returns 0. */
int http_query_or_reply(struct http_request *r, const char *const *allowed,
                        struct evkeyvalq *params);
/* The first name params holds twice, or NULL. */
const char *http_query_repeated(const struct evkeyvalq *params);
/* 400 with errors: [{"parameter": name, "message": message}]. */
void http_reply_bad_parameter(struct http_request *r, const char *name, const char *message);

double http_now(void);

#endif
