/* GET /v1/stats/themes: the partnership's headline insights, live. Per
 * improvement-opportunity theme, over the live facts whose event time lies in
 * the window: how many reviews, opportunities and jurisdictions, counted in the
 * database in one statement. Any valid token reads it, so a count below
 * privacy.min_cell is shown as "<min_cell": small cells can identify a child.
 *
 * The window's ends depend on who asks. An admin (who can read every review
 * anyway) gets exact bounds: (until - window, until], to the millisecond, and
 * "granularity": "millisecond". Anyone else gets whole UTC months, as notices
 * date nothing finer than a month: from is the first instant of the month
 * holding until - window, until the first instant of the month after the one
 * holding until (so the default, now, still counts everything up to now), and
 * the window is [from, until), so that a review at the first instant of a
 * month counts in that month's windows only; the reply shows these bounds and
 * "granularity": "month". Otherwise moving until, or the window, across a
 * review's event time and watching the counts change would date the review to
 * the millisecond, though no reply holds its time. */
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "engine.h"
#include "log.h"
#include "store.h"

#define WINDOW_DEFAULT "365d"
#define WINDOW_MIN_MS  (3600LL * 1000)
#define WINDOW_MAX_MS  (3660LL * 86400 * 1000)
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define TIME_TEXT_LEN 32

struct themes_ctx {
    struct http_request *r;
    char *window; /* as the client wrote it */
    char from[TIME_TEXT_LEN], until[TIME_TEXT_LEN];
    int by_month; /* whole-month bounds, [from, until); else exact, (from, until] */
    int64_t min_cell;
};

/* Columns (the statement's facts are those of `bounds`, one of the two below):
 * 0 reviews, 1 jurisdictions (the window's totals, on every row),
 * then one row per theme (a single row of NULLs when there is none):
 * 2 theme, 3 reviews, 4 improvement opportunities, 5 jurisdictions, 6 share.
 * A review counts once however many facts it has; the facts of an amended
 * review's old versions are retracted, so they do not count. Rows whose
 * reviews are suppressed sort by theme alone: their order must not tell a
 * count of 1 from one of 2. */
#define THEMES_SQL(bounds)                                                                         \
    "WITH live AS ("                                                                               \
    "  SELECT jurisdiction, review_id, kind, theme FROM facts"                                     \
    "   WHERE retracted_at IS NULL AND " bounds "), totals AS ("                                   \
    "  SELECT count(DISTINCT (jurisdiction, review_id)) AS reviews,"                               \
    "         count(DISTINCT jurisdiction) AS jurisdictions FROM live"                             \
    "), themes AS ("                                                                               \
    "  SELECT theme, count(DISTINCT (jurisdiction, review_id)) AS reviews,"                        \
    "         count(*) AS opportunities, count(DISTINCT jurisdiction) AS jurisdictions"            \
    "    FROM live WHERE kind = 'improvement_opportunity' AND theme IS NOT NULL"                   \
    "   GROUP BY theme"                                                                            \
    ")"                                                                                            \
    " SELECT t.reviews, t.jurisdictions, th.theme, th.reviews, th.opportunities,"                  \
    "        th.jurisdictions, round(th.reviews::numeric / nullif(t.reviews, 0), 3)"               \
    "   FROM totals t LEFT JOIN themes th ON true"                                                 \
    "  ORDER BY CASE WHEN th.reviews >= $3::bigint THEN th.reviews ELSE 0 END DESC,"               \
    "           th.theme COLLATE \"C\""
/* exact bounds, for admins: (from, until] */
static const char themes_exact_sql[] =
    THEMES_SQL("event_time > $1::timestamptz AND event_time <= $2::timestamptz");
/* whole months: [from, until), each instant in exactly one month */
static const char themes_month_sql[] =
    THEMES_SQL("event_time >= $1::timestamptz AND event_time < $2::timestamptz");

/* RFC 3339 UTC, with milliseconds only when there are any. Returns -1 when the
 * year is outside 0001 to 9999 (not a timestamp both ends understand). */
static int format_time(int64_t ms, char buf[TIME_TEXT_LEN])
{
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    int millis = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999) return -1;
    int n = snprintf(buf, TIME_TEXT_LEN, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(buf + n, (size_t)(TIME_TEXT_LEN - n), millis ? ".%03dZ" : "Z", millis);
    return 0;
}

/* *ms becomes the first instant (UTC) of the month `months` months after the
 * one holding it. Returns -1 when the calendar cannot say. */
static int month_start(int64_t *ms, int months)
{
    int64_t secs = *ms / 1000 - (*ms % 1000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return -1;
    struct tm first = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon + months, .tm_mday = 1};
    time_t start = timegm(&first);
    if (start == (time_t)-1) return -1;
    *ms = (int64_t)start * 1000;
    return 0;
}

/* Only hours, days and weeks: a window of minutes says nothing about reviews. */
static int parse_window(const char *text, int64_t *ms)
{
    size_t len = strlen(text);
    if (len == 0 || !strchr("hdw", text[len - 1])) return -1;
    if (conf_parse_duration(text, ms) != 0) return -1;
    return *ms >= WINDOW_MIN_MS && *ms <= WINDOW_MAX_MS ? 0 : -1;
}

/* count, or "<min_cell" (and *suppressed set) when it is below min_cell. */
static json_t *cell(const char *count_text, int64_t min_cell, int *suppressed)
{
    long long count = strtoll(count_text, NULL, 10);
    if (count < min_cell) {
        *suppressed = 1;
        return json_sprintf("<%lld", (long long)min_cell);
    }
    return json_integer((json_int_t)count);
}

static void themes_ctx_free(struct themes_ctx *c)
{
    free(c->window);
    free(c);
}

static void on_themes(PGresult *res, void *arg)
{
    struct themes_ctx *c = arg;
    struct http_request *r = c->r;
    if (!res || store_failed(res) || PQntuples(res) < 1) {
        if (res && store_failed(res))
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot compute theme statistics");
        http_reply_unavailable(r, "the database is not available");
        themes_ctx_free(c);
        return;
    }
    int ignored = 0;
    json_t *themes = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 2)) continue; /* no theme in the window */
        int suppressed = 0;
        json_t *reviews = cell(PQgetvalue(res, i, 3), c->min_cell, &suppressed);
        json_t *opportunities = cell(PQgetvalue(res, i, 4), c->min_cell, &suppressed);
        json_t *jurisdictions = cell(PQgetvalue(res, i, 5), c->min_cell, &suppressed);
        json_t *share = suppressed || PQgetisnull(res, i, 6)
                            ? json_null()
                            : json_real(strtod(PQgetvalue(res, i, 6), NULL));
        json_array_append_new(
            themes, json_pack("{s:s,s:o,s:o,s:o,s:o}", "theme", PQgetvalue(res, i, 2), "reviews",
                              reviews, "improvement_opportunities", opportunities,
                              "share_of_reviews", share, "jurisdictions", jurisdictions));
    }
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "window", c->window, "from", c->from, "until",
                  c->until, "granularity", c->by_month ? "month" : "millisecond", "reviews",
                  cell(PQgetvalue(res, 0, 0), c->min_cell, &ignored), "jurisdictions",
                  cell(PQgetvalue(res, 0, 1), c->min_cell, &ignored), "themes", themes);
    /* Shares have three decimals: 15 significant digits print 0.1 as 0.1, not
     * as the 17 that http_reply_json() would use (0.10000000000000001). */
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (!text) sn_oom(0);
    http_reply(r, 200, "application/json", text, strlen(text));
    free(text);
    themes_ctx_free(c);
}

void stats_http_themes(struct http_request *r)
{
    static const char *const allowed[] = {"window", "until", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *bad = NULL, *why = NULL;
    for (size_t i = 0; allowed[i] && !bad; i++) {
        int seen = 0;
        for (struct evkeyval *kv = q.tqh_first; kv; kv = kv->next.tqe_next)
            seen += strcmp(kv->key, allowed[i]) == 0;
        if (seen > 1) bad = allowed[i], why = "given more than once";
    }
    const char *window = evhttp_find_header(&q, "window");
    const char *until_text = evhttp_find_header(&q, "until");
    int64_t window_ms = 0, until_ms = 0;
    struct themes_ctx *c = xcalloc(1, sizeof(*c));
    if (bad) {
    } else if (parse_window(window ? window : WINDOW_DEFAULT, &window_ms) != 0) {
        bad = "window",
        why = "a duration in hours, days or weeks (e.g. 365d, 52w, 72h) from 1h to 3660d";
    } else if (until_text && engine_parse_time(until_text, &until_ms) != 0) {
        bad = "until", why = "an RFC 3339 date-time, e.g. 2026-01-01T00:00:00Z";
    } else {
        if (!until_text) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            until_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        }
        /* not an admin: whole months, [from, until); see the top of the file */
        c->by_month = who.role != ROLE_ADMIN;
        int64_t from_ms = until_ms - window_ms;
        if ((c->by_month && (month_start(&from_ms, 0) != 0 || month_start(&until_ms, 1) != 0)) ||
            format_time(until_ms, c->until) != 0 || format_time(from_ms, c->from) != 0)
            bad = "until", why = "the window must lie between the years 0001 and 9999";
    }
    if (bad) {
        evhttp_clear_headers(&q);
        free(c);
        http_reply_bad_parameter(r, bad, why);
        return;
    }
    c->r = r;
    c->window = xstrdup(window ? window : WINDOW_DEFAULT);
    c->min_cell = b->conf.privacy_min_cell;
    evhttp_clear_headers(&q);
    char min_cell_text[24];
    snprintf(min_cell_text, sizeof(min_cell_text), "%lld", (long long)c->min_cell);
    const char *params[] = {c->from, c->until, min_cell_text};
    if (store_query(b->store, c->by_month ? themes_month_sql : themes_exact_sql, 3, params,
                    on_themes, c) != SN_OK)
        on_themes(NULL, c);
}
