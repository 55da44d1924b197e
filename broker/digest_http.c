/* GET /v1/subscriptions/{id}/digest-preview: the digest of a digest
 * subscription for one period, computed now as the digest clock would
 * (digest_clock.c), without storing or sending it. ?period=RFC 3339 picks the
 * period that contains that time (default: the current one, so far);
 * ?format=text (the default: "Subject: ..." then the text body), html or
 * json (the CloudEvent a webhook would get). A subscriber token previews its
 * own jurisdiction's subscriptions, an admin token all. */
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "digest_clock.h"
#include "engine.h"
#include "log.h"
#include "store.h"

enum preview_format { FORMAT_TEXT, FORMAT_HTML, FORMAT_JSON };

struct preview_ctx {
    struct http_request *r;
    enum preview_format format;
    int64_t at; /* seconds: the period that contains it */
};

static void on_computed(json_t *data, int already_stored, const char *error, void *arg)
{
    struct preview_ctx *c = arg;
    struct http_request *r = c->r;
    enum preview_format format = c->format;
    free(c);
    (void)already_stored;
    if (!data) {
        log_error(json_pack("{s:s}", "error", error ? error : "?"), "cannot preview a digest");
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    if (format == FORMAT_JSON) {
        http_reply_json(r, 200, digest_cloudevent(data));
        json_decref(data);
        return;
    }
    char *subject, *text, *html;
    digest_render(data, &subject, &text, &html);
    json_decref(data);
    if (format == FORMAT_HTML) {
        http_reply(r, 200, "text/html; charset=utf-8", html, strlen(html));
    } else {
        size_t len = strlen(subject) + strlen(text) + 16;
        char *body = xmalloc(len);
        snprintf(body, len, "Subject: %s\n\n%s", subject, text);
        http_reply(r, 200, "text/plain; charset=utf-8", body, strlen(body));
        free(body);
    }
    free(subject);
    free(text);
    free(html);
}

static void on_loaded(PGresult *res, void *arg)
{
    struct preview_ctx *c = arg;
    struct http_request *r = c->r;
    struct broker *b = r->app;
    if (!broker_one_row_or_reply(r, res, "cannot read a subscription", "no such subscription")) {
        free(c);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "digest") != 0 || PQgetisnull(res, 0, 2)) {
        free(c);
        http_reply_problem(r, 409, "Conflict",
                           "the subscription is not in mode digest: it has no digest to preview",
                           NULL);
        return;
    }
    struct digest_job job;
    memset(&job, 0, sizeof(job));
    job.subscription_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(job.subscriber, sizeof(job.subscriber), "%s", PQgetvalue(res, 0, 1));
    snprintf(job.schedule, sizeof(job.schedule), "%s", PQgetvalue(res, 0, 2));
    char err[256];
    if (digest_schedule_parse(job.schedule, &job.parsed, err, sizeof(err)) != SN_OK ||
        digest_period_containing(&job.parsed, c->at, &job.period) != 0) {
        free(c);
        http_reply_problem(r, 409, "Conflict", "the subscription's schedule has no such period",
                           NULL);
        return;
    }
    job.previous = digest_previous_period(&job.parsed, job.period);
    if (digest_compute(b, &job, on_computed, c) != SN_OK) {
        free(c);
        http_reply_unavailable(r, "the database is not available");
    }
}

void digest_http_preview(struct http_request *r)
{
    static const char *const allowed[] = {"period", "format", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    if (who.role != ROLE_ADMIN && who.role != ROLE_SUBSCRIBER) {
        http_reply_problem(r, 403, "Forbidden", "only a subscriber or admin token previews digests",
                           NULL);
        return;
    }
    const char *id = r->params[0];
    size_t idlen = strlen(id);
    if (idlen == 0 || idlen > 18 || strspn(id, "0123456789") != idlen) {
        http_reply_problem(r, 404, "Not Found", "no such subscription", NULL);
        return;
    }
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *period = evhttp_find_header(&q, "period");
    const char *format = evhttp_find_header(&q, "format");
    struct preview_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->at = digest_clock_now(b);
    int64_t ms;
    const char *bad = NULL, *why = NULL;
    if (period && engine_parse_time(period, &ms) != 0)
        bad = "period", why = "an RFC 3339 date-time: the digest of the period that contains it";
    else if (period)
        c->at = ms / 1000 - (ms % 1000 < 0);
    if (!format || strcmp(format, "text") == 0)
        c->format = FORMAT_TEXT;
    else if (strcmp(format, "html") == 0)
        c->format = FORMAT_HTML;
    else if (strcmp(format, "json") == 0)
        c->format = FORMAT_JSON;
    else
        bad = "format", why = "text, html or json";
    evhttp_clear_headers(&q);
    if (bad) {
        free(c);
        http_reply_bad_parameter(r, bad, why);
        return;
    }
    const char *params[] = {id, who.role == ROLE_ADMIN ? "" : who.jurisdiction};
    if (store_query(b->store,
                    "SELECT id, subscriber, schedule, mode FROM subscriptions WHERE id = "
                    "$1::bigint AND deleted_at IS NULL AND ($2 = '' OR subscriber = $2)",
                    2, params, on_loaded, c) != SN_OK) {
        free(c);
        http_reply_unavailable(r, "the database is not available");
    }
}
