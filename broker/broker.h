/* The process: what main.c starts and stops, and what route handlers reach
 * through http_request.app. */
#ifndef SN_BROKER_H
#define SN_BROKER_H

#include <event2/event.h>
#include <libpq-fe.h>

#include "auth.h"
#include "conf.h"
#include "engine.h"
#include "http.h"
#include "schema.h"

struct broker {
    struct conf conf;
    const char *embedded_dir; /* NULL unless --embedded */
    struct event_base *base;
    struct http_server *http;
    struct store *store;
    struct kafka *kafka;
    struct kafka_mock *kafka_mock;
    struct embedded *embedded;
    struct schema_set *schemas;
    struct auth *auth;
    struct ingest *ingest;
    struct ingest_kafka *ingest_kafka;
    struct leader *leader;
    struct curl_loop *curl;
    struct sink *sinks[3]; /* kafka, webhook, email (when smtp.url is set) */
    size_t nsinks;
    struct outbox *outbox;
    /* digest_clock.h */
    struct digest_clock *digest;
    struct cluster *cluster; /* cluster.h */
    struct rule_set *rules;  /* NULL: no rules */
    char rules_path[4200];   /* "" when none */
    struct engine_options engine_options;
    char **unnamed; /* privacy.unnamed_jurisdictions, split */
    char http_address[300];
    char kafka_bootstrap[1024];
    int store_started;
    int admin_token_ready;
    int announced;
    int shutting_down;
    int exit_code;
    double shutdown_started_at;
    struct event *signal_evs[3];
    struct event *drain_ev;
    struct event *deadline_ev;
};

/* The route table of the HTTP API. */
extern const struct http_route broker_routes[];
extern const size_t broker_routes_count;

/* Authenticates the request's bearer token; on failure replies (401, or 503
 * before the token cache is loaded) and returns 0. On success an audited
 * route's call is recorded from then on (audit_begin). */
int broker_authenticate_or_reply(struct http_request *r, struct identity *who);
/* The same, and replies 403 unless the token is an admin's; what completes
 * "only an admin token ..." in the reply. */
int broker_require_admin_or_reply(struct http_request *r, struct identity *who, const char *what);

/* A page of a keyset-paginated list (GET /v1/notices, deliveries, audit):
 * the query's rows are (cursor, item as JSON text), one more than limit when
 * there is a next page. As a store callback: replies {"items", "next_cursor"},
 * or 503 and logs what on a database error; frees the page. */
struct broker_page {
    struct http_request *r;
    int limit;
    const char *what; /* "cannot list notices" */
};
void broker_reply_page(PGresult *res, void *arg);
/* Pages of those lists: ?limit= from 1 to BROKER_LIST_MAX, BROKER_LIST_DEFAULT
 * when absent. */
#define BROKER_LIST_DEFAULT 100
#define BROKER_LIST_MAX     500
#define BROKER_LIMIT_WHY    "an integer from 1 to " SN_STR(BROKER_LIST_MAX)
/* text as a page size: 1 with *limit set, 0 when it is not one. */
int broker_parse_limit(const char *text, long *limit);
/* text as a positive bigint (an id in a path or a query), or 0. */
long long broker_parse_id(const char *text);
/* 1 when value is one of the NULL-terminated allowed. */
int broker_one_of(const char *value, const char *const *allowed);
/* 1 when res holds exactly one row. Else replies, and returns 0: 503 on a
 * database error (logged as what), 404 with not_found when there is no row. */
int broker_one_row_or_reply(struct http_request *r, PGresult *res, const char *what,
                            const char *not_found);

/* Route handlers (ingest_http.c, tokens_http.c). */
void ingest_http_post_events(struct http_request *r);
void ingest_http_get_review(struct http_request *r);
void tokens_http_create(struct http_request *r);
void tokens_http_list(struct http_request *r);
void tokens_http_revoke(struct http_request *r);
/* notices_http.c */
void notices_http_list(struct http_request *r);
void notices_http_get(struct http_request *r);
/* rules_http.c */
void rules_http_list(struct http_request *r);
void rules_http_reload(struct http_request *r);
void rules_http_backtest(struct http_request *r);
/* stats_http.c */
void stats_http_themes(struct http_request *r);
/* subscriptions_http.c */
void subscriptions_http_create(struct http_request *r);
void subscriptions_http_list(struct http_request *r);
void subscriptions_http_get(struct http_request *r);
void subscriptions_http_update(struct http_request *r);
void subscriptions_http_delete(struct http_request *r);
void subscriptions_http_rotate_secret(struct http_request *r);
void subscriptions_http_test(struct http_request *r);
/* silences_http.c */
void silences_http_create(struct http_request *r);
void silences_http_list(struct http_request *r);
void silences_http_get(struct http_request *r);
void silences_http_expire(struct http_request *r);
/* deliveries_http.c */
void deliveries_http_list(struct http_request *r);
void deliveries_http_get(struct http_request *r);
void deliveries_http_retry(struct http_request *r);
/* audit_http.c */
void audit_http_list(struct http_request *r);
/* jurisdictions_http.c */
void jurisdictions_http_export(struct http_request *r);
void jurisdictions_http_purge(struct http_request *r);
/* status_http.c */
void status_http_get(struct http_request *r);
/* digest_http.c */
void digest_http_preview(struct http_request *r);
/* dashboard_http.c: HTML pages and the session form */
void dashboard_http_overview(struct http_request *r);
void dashboard_http_notice(struct http_request *r);
void dashboard_http_delivery(struct http_request *r);
void dashboard_http_login_form(struct http_request *r);
void dashboard_http_login(struct http_request *r);
void dashboard_http_logout(struct http_request *r);

/* Loads the rules from rules.path again and hands them to the engine; on
 * errors (appended to errors, if not NULL) the running rules stay. */
enum sn_err broker_reload_rules(struct broker *b, json_t *errors);

/* 1 when every dependency is ready; fills checks (if not NULL) with one
 * object per dependency: {"ready": bool, "detail": text}. */
int broker_ready(const struct broker *b, json_t *checks);

#endif
