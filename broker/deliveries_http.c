/* The deliveries API (admin only): the outbox as an operator looks at it.
 * GET /v1/deliveries (filtered, newest first, cursor-paginated), GET
 * /v1/deliveries/{id} (with every attempt) and POST /v1/deliveries/{id}/retry
 * (a dead or cancelled delivery goes out again, with a fresh retry
 * schedule). */
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "store.h"

#define OUTBOX_CHANNEL "sn_outbox"

/* clang-format off */
#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* A delivery as the API shows it (o: a row of outbox). */
#define DELIVERY_OBJECT                                                                            \
    "json_build_object('id', o.id, 'notice_id', o.notice_id, 'revision', o.revision,"              \
    " 'channel', o.channel, 'target', o.target, 'subscription_id', o.subscription_id,"             \
    " 'state', o.state, 'attempts', o.attempts, 'due_at', " UTC("o.due_at") ","                    \
    " 'created_at', " UTC("o.created_at") ", 'delivered_at', " UTC("o.delivered_at") ","           \
    " 'last_error', o.last_error)::text"
/* One attempt at it (a: a row of delivery_attempts). */
#define ATTEMPT_OBJECT                                                                             \
    "json_build_object('attempt', a.attempt, 'started_at', " UTC("a.started_at") ","               \
    " 'latency_ms', a.latency_ms, 'status_code', a.status_code, 'error', a.error,"                 \
    " 'outcome', a.outcome)"
/* clang-format on */

void deliveries_http_list(struct http_request *r)
{
    static const char *const allowed[] = {"state",  "channel", "subscription", "notice", "limit",
                                          "cursor", NULL};
    static const char *const states[] = {"pending",    "delivered", "dead", "silenced",
                                         "suppressed", "cancelled", NULL};
    static const char *const channels[] = {"kafka", "webhook", "email", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "reads deliveries")) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *state = evhttp_find_header(&q, "state");
    const char *channel = evhttp_find_header(&q, "channel");
    const char *subscription = evhttp_find_header(&q, "subscription");
    const char *notice = evhttp_find_header(&q, "notice");
    const char *limit_text = evhttp_find_header(&q, "limit");
    const char *cursor = evhttp_find_header(&q, "cursor");
    const char *bad = NULL, *why = NULL;
    long limit = BROKER_LIST_DEFAULT;
    if ((bad = http_query_repeated(&q)) != NULL) {
        why = "given twice";
    } else if (state && !broker_one_of(state, states)) {
        bad = "state", why = "one of pending, delivered, dead, silenced, suppressed, cancelled";
    } else if (channel && !broker_one_of(channel, channels)) {
        bad = "channel", why = "one of kafka, webhook, email";
    } else if (subscription && broker_parse_id(subscription) == 0) {
        bad = "subscription", why = "a subscription id (a positive integer)";
    } else if (notice && !notice[0]) {
        bad = "notice", why = "a notice id such as sn-0123456789abcdef0123";
    } else if (limit_text && !broker_parse_limit(limit_text, &limit)) {
        bad = "limit", why = BROKER_LIMIT_WHY;
    } else if (cursor && broker_parse_id(cursor) == 0) {
        bad = "cursor", why = "the next_cursor of a previous reply";
    }
    if (bad) {
        /* bad may point into q: reply first */
        http_reply_bad_parameter(r, bad, why);
        evhttp_clear_headers(&q);
        return;
    }
    char limit_plus[24];
    snprintf(limit_plus, sizeof(limit_plus), "%ld", limit + 1);
    const char *params[] = {cursor, state, channel, subscription, notice, limit_plus};
    struct broker_page *c = xcalloc(1, sizeof(*c));
    c->what = "cannot list deliveries";
    c->r = r;
    c->limit = (int)limit;
    enum sn_err rc = store_query(b->store,
                                 "SELECT o.id, " DELIVERY_OBJECT " FROM outbox o"
                                 " WHERE ($1::bigint IS NULL OR o.id < $1::bigint)"
                                 "   AND ($2::text IS NULL OR o.state = $2::text)"
                                 "   AND ($3::text IS NULL OR o.channel = $3::text)"
                                 "   AND ($4::bigint IS NULL OR o.subscription_id = $4::bigint)"
                                 "   AND ($5::text IS NULL OR o.notice_id = $5::text)"
                                 " ORDER BY o.id DESC LIMIT $6::int",
                                 6, params, broker_reply_page, c);
    evhttp_clear_headers(&q);
    if (rc != SN_OK) broker_reply_page(NULL, c);
}

static void on_got(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!broker_one_row_or_reply(r, res, "cannot read a delivery", "no delivery with this id"))
        return;
    json_t *delivery = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *history = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    json_object_set_new(delivery, "history", history ? history : json_array());
    http_reply_json(r, 200, delivery);
}

void deliveries_http_get(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "reads deliveries")) return;
    if (broker_parse_id(r->params[0]) == 0) {
        http_reply_problem(r, 404, "Not Found", "no delivery with this id", NULL);
        return;
    }
    const char *params[] = {r->params[0]};
    /* the attempts in the order they were made: a retry starts counting
     * from 1 again */
    if (store_query(b->store,
                    "SELECT " DELIVERY_OBJECT ","
                    " (SELECT json_agg(" ATTEMPT_OBJECT " ORDER BY a.id)::text"
                    "    FROM delivery_attempts a WHERE a.outbox_id = o.id)"
                    " FROM outbox o WHERE o.id = $1::bigint",
                    1, params, on_got, r) != SN_OK)
        on_got(NULL, r);
}

struct retry_ctx {
    struct http_request *r;
    long long token_id;
};

static void on_retried(PGresult *res, void *arg)
{
    struct retry_ctx *c = arg;
    struct http_request *r = c->r;
    long long token_id = c->token_id;
    free(c);
    if (!broker_one_row_or_reply(r, res, "cannot retry a delivery", "no delivery with this id"))
        return;
    json_t *delivery = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    const char *refused = PQgetvalue(res, 0, 1);
    long long id = (long long)json_integer_value(json_object_get(delivery, "id"));
    long long subscription =
        (long long)json_integer_value(json_object_get(delivery, "subscription_id"));
    char detail[256];
    if (strcmp(refused, "state") == 0) {
        snprintf(detail, sizeof(detail),
                 "delivery %lld is %s: only a dead or cancelled delivery can be retried", id,
                 json_string_value(json_object_get(delivery, "state")));
    } else if (strcmp(refused, "deleted") == 0) {
        snprintf(detail, sizeof(detail),
                 "delivery %lld belongs to subscription %lld, which is deleted", id, subscription);
    } else if (strcmp(refused, "disabled") == 0) {
        snprintf(detail, sizeof(detail),
                 "delivery %lld belongs to subscription %lld, which is disabled: enable it "
                 "first",
                 id, subscription);
    } else {
        log_info(
            json_pack("{s:I,s:I}", "delivery_id", (json_int_t)id, "token_id", (json_int_t)token_id),
            "delivery retried");
        http_reply_json(r, 200, delivery);
        return;
    }
    http_reply_problem(r, 409, "Conflict", detail, json_pack("{s:o}", "delivery", delivery));
}

void deliveries_http_retry(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "retries deliveries")) return;
    if (broker_parse_id(r->params[0]) == 0) {
        http_reply_problem(r, 404, "Not Found", "no delivery with this id", NULL);
        return;
    }
    struct retry_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->token_id = who.token_id;
    const char *params[] = {r->params[0]};
    /* Not to a subscription that was deleted or disabled (its target
     * answered 410 Gone, or an admin turned it off): the subscriber asked
     * to stop. The main query does not see the update's effects, hence the
     * UNION of RETURNING and the row as it was. */
    if (store_query(
            b->store,
            "WITH e AS ("
            "  UPDATE outbox o SET state = 'pending', due_at = now(), attempts = 0,"
            "         claimed_by = NULL"
            "   WHERE o.id = $1::bigint AND o.state IN ('dead', 'cancelled')"
            "     AND (o.subscription_id IS NULL"
            "          OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = o.subscription_id"
            "                       AND s.deleted_at IS NULL AND s.enabled))"
            "  RETURNING " DELIVERY_OBJECT " AS body"
            ") SELECT body, '', pg_notify('" OUTBOX_CHANNEL "', 'retry') FROM e"
            " UNION ALL"
            " SELECT " DELIVERY_OBJECT ","
            "        CASE WHEN o.state NOT IN ('dead', 'cancelled') THEN 'state'"
            "             WHEN s.deleted_at IS NOT NULL THEN 'deleted' ELSE 'disabled' END,"
            "        NULL"
            "   FROM outbox o LEFT JOIN subscriptions s ON s.id = o.subscription_id"
            "  WHERE o.id = $1::bigint AND NOT EXISTS (SELECT 1 FROM e)",
            1, params, on_retried, c) != SN_OK)
        on_retried(NULL, c);
}
