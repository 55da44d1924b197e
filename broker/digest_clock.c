#include "digest_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

/* Periods one subscription catches up per tick (after a long stop, the rest
 * follow on the next ticks). */
#define CATCH_UP_PER_TICK 20

struct digest_clock {
    struct broker *b;
    struct event *tick_ev;
    int busy, stopped;
    struct digest_job *jobs;
    size_t njobs, next_job;
};

int64_t digest_clock_now(const struct broker *b)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec + b->conf.digest_clock_offset_ms / 1000;
}

struct digest_period digest_previous_period(const struct digest_schedule *s, struct digest_period p)
{
    int64_t start = digest_prev(s, p.start - 1);
    /* a schedule that did not fire before: a previous period as long */
    if (start < 0) start = p.start - (p.end - p.start);
    return (struct digest_period){start, p.start};
}

/* ---- counting ---- */

/* $1 subscription, $2 period start, $3 period end, then the bounds of the
 * counts (digest_count_window()): $4 previous start, $5 start, $6 end (Unix
 * seconds). One JSON object: the notice revisions of the period that its
 * filter matches (the latest of each notice per status; issued, escalated,
 * resolved), the reviews and jurisdictions counted and those before (facts
 * by event time, [start, end), as /v1/stats/themes counts them), the same
 * per improvement-opportunity theme, and whether the period is stored. */
static const char counts_sql[] =
    "WITH s AS (SELECT matchers FROM subscriptions WHERE id = $1::bigint), "
    "revs AS ("
    "  SELECT DISTINCT ON (r.notice_id, r.status) r.notice_id, r.revision, r.status, r.severity,"
    "         r.body, r.issued_at"
    "    FROM notice_revisions r, s"
    "   WHERE r.issued_at >= to_timestamp($2::bigint) AND r.issued_at < to_timestamp($3::bigint)"
    "     AND r.status IN ('issued', 'escalated', 'resolved')"
    "     AND sn_matches(s.matchers, sn_notice_labels(r.body))"
    "   ORDER BY r.notice_id, r.status, r.revision DESC"
    "), live AS ("
    "  SELECT jurisdiction, review_id, kind, theme, event_time >= to_timestamp($5::bigint) AS cur"
    "    FROM facts WHERE retracted_at IS NULL"
    "     AND event_time >= to_timestamp($4::bigint) AND event_time < to_timestamp($6::bigint)"
    "), totals AS ("
    "  SELECT count(DISTINCT (jurisdiction, review_id)) FILTER (WHERE cur) AS reviews,"
    "         count(DISTINCT jurisdiction) FILTER (WHERE cur) AS jurisdictions,"
    "         count(DISTINCT (jurisdiction, review_id)) FILTER (WHERE NOT cur) AS prev_reviews,"
    "         count(DISTINCT jurisdiction) FILTER (WHERE NOT cur) AS prev_jurisdictions"
    "    FROM live"
    "), themes AS ("
    "  SELECT theme, count(DISTINCT (jurisdiction, review_id)) FILTER (WHERE cur) AS reviews,"
    "         count(DISTINCT jurisdiction) FILTER (WHERE cur) AS jurisdictions,"
    "         count(DISTINCT (jurisdiction, review_id)) FILTER (WHERE NOT cur) AS prev_reviews,"
    "         count(DISTINCT jurisdiction) FILTER (WHERE NOT cur) AS prev_jurisdictions"
    "    FROM live WHERE kind = 'improvement_opportunity' AND theme IS NOT NULL GROUP BY theme"
    ") "
    "SELECT jsonb_build_object("
    " 'notices', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', notice_id, 'revision',"
    "   revision, 'status', status, 'severity', severity, 'rule', body->>'rule', 'headline',"
    "   COALESCE(body->>'headline', ''), 'issued_at', to_char(issued_at AT TIME ZONE 'UTC',"
    "   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) ORDER BY issued_at, notice_id) FROM revs), '[]'),"
    " 'totals', (SELECT to_jsonb(totals) FROM totals),"
    " 'themes', COALESCE((SELECT jsonb_agg(to_jsonb(themes) ORDER BY theme) FROM themes), '[]'),"
    " 'stored', EXISTS (SELECT 1 FROM digests WHERE subscription_id = $1::bigint"
    "                    AND period_start = to_timestamp($2::bigint)))::text";

struct compute_ctx {
    struct broker *b;
    struct digest_job job;
    struct digest_period count, previous;
    int by_month;
    digest_computed_fn cb;
    void *arg;
};

/* The dashboard's base for links: http.public_url, else the address the
 * broker listens on. */
static void public_url(const struct broker *b, char *buf, size_t len)
{
    if (b->conf.http_public_url && b->conf.http_public_url[0])
        snprintf(buf, len, "%s", b->conf.http_public_url);
    else
        snprintf(buf, len, "%s://%s", b->conf.tls_cert_file[0] ? "https" : "http", b->http_address);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
}

static void on_counted(PGresult *res, void *arg)
{
    struct compute_ctx *c = arg;
    json_t *counts = NULL;
    if (!res || store_failed(res) || PQntuples(res) != 1 ||
        !(counts = json_loads(PQgetvalue(res, 0, 0), 0, NULL))) {
        c->cb(NULL, 0, res ? PQresultErrorMessage(res) : "the database connection was lost",
              c->arg);
        free(c);
        return;
    }
    char url[1024];
    public_url(c->b, url, sizeof(url));
    const struct digest_input in = {c->job.subscription_id,
                                    c->job.subscriber,
                                    c->job.schedule,
                                    c->job.parsed.zone,
                                    c->job.period,
                                    c->count,
                                    c->previous,
                                    c->by_month,
                                    c->b->conf.privacy_min_cell,
                                    url,
                                    counts};
    json_t *data = digest_build(&in);
    int stored = json_is_true(json_object_get(counts, "stored"));
    json_decref(counts);
    c->cb(data, stored, NULL, c->arg);
    free(c);
}

enum sn_err digest_compute(struct broker *b, const struct digest_job *job, digest_computed_fn cb,
                           void *arg)
{
    struct compute_ctx *c = xcalloc(1, sizeof(*c));
    c->b = b;
    c->job = *job;
    c->cb = cb;
    c->arg = arg;
    c->previous = job->previous;
    c->by_month = digest_count_window(job->subscriber, job->period, &c->count, &c->previous);
    char id[24], start[24], end[24], prev[24], count_start[24], count_end[24];
    snprintf(id, sizeof(id), "%lld", job->subscription_id);
    snprintf(start, sizeof(start), "%lld", (long long)job->period.start);
    snprintf(end, sizeof(end), "%lld", (long long)job->period.end);
    snprintf(prev, sizeof(prev), "%lld", (long long)c->previous.start);
    snprintf(count_start, sizeof(count_start), "%lld", (long long)c->count.start);
    snprintf(count_end, sizeof(count_end), "%lld", (long long)c->count.end);
    const char *params[] = {id, start, end, prev, count_start, count_end};
    enum sn_err rc =
        b->store ? store_query(b->store, counts_sql, 6, params, on_counted, c) : SN_ERR_UNAVAILABLE;
    if (rc != SN_OK) free(c);
    return rc;
}

/* ---- the clock ---- */

static void run_next_job(struct digest_clock *c);

static void job_done(struct digest_clock *c)
{
    c->next_job++;
    run_next_job(c);
}

static void on_stored(PGresult *res, void *arg)
{
    struct digest_clock *c = arg;
    const struct digest_job *job = &c->jobs[c->next_job];
    if (!res || store_failed(res)) {
        log_warn(json_pack("{s:I,s:s}", "subscription", (json_int_t)job->subscription_id, "error",
                           res ? PQresultErrorMessage(res) : "connection lost"),
                 "digest not stored; it is computed again on the next tick");
        /* the later periods of this round wait for the next tick, in order */
        c->next_job = c->njobs;
        run_next_job(c);
        return;
    }
    if (!PQgetisnull(res, 0, 0)) {
        metrics_counter_add("sn_digests_total", "", 1);
        log_info(json_pack("{s:I,s:s,s:I,s:I}", "subscription", (json_int_t)job->subscription_id,
                           "digest", PQgetvalue(res, 0, 0), "period_start",
                           (json_int_t)job->period.start, "period_end",
                           (json_int_t)job->period.end),
                 "digest stored");
    }
    job_done(c);
}

static void on_job_computed(json_t *data, int already_stored, const char *error, void *arg)
{
    struct digest_clock *c = arg;
    const struct digest_job *job = &c->jobs[c->next_job];
    if (!data) {
        log_warn(json_pack("{s:I,s:s}", "subscription", (json_int_t)job->subscription_id, "error",
                           error ? error : "?"),
                 "cannot compute a digest; trying again on the next tick");
        c->next_job = c->njobs;
        run_next_job(c);
        return;
    }
    if (already_stored) {
        json_decref(data);
        job_done(c);
        return;
    }
    int nothing_new = digest_nothing_new(data);
    int send = !(nothing_new && job->skip_empty);
    json_t *message = digest_message(data);
    json_decref(data);
    char *message_text = json_dumps(message, JSON_COMPACT);
    json_decref(message);
    if (!message_text) sn_oom(0);
    char id[24], start[24], end[24];
    snprintf(id, sizeof(id), "%lld", job->subscription_id);
    snprintf(start, sizeof(start), "%lld", (long long)job->period.start);
    snprintf(end, sizeof(end), "%lld", (long long)job->period.end);
    const char *params[] = {
        id, start, end, nothing_new ? "true" : "false", send ? "true" : "false", message_text};
    enum sn_err rc = store_query(c->b->store,
                                 "SELECT digest_store($1::bigint, to_timestamp($2::bigint), "
                                 "to_timestamp($3::bigint), $4::boolean, $5::boolean, $6::jsonb)",
                                 6, params, on_stored, c);
    free(message_text);
    if (rc != SN_OK) {
        c->next_job = c->njobs;
        run_next_job(c);
    }
}

static void run_next_job(struct digest_clock *c)
{
    while (c->next_job < c->njobs && !c->stopped) {
        if (digest_compute(c->b, &c->jobs[c->next_job], on_job_computed, c) == SN_OK) return;
        c->next_job = c->njobs; /* the store is down: next tick */
    }
    free(c->jobs);
    c->jobs = NULL;
    c->njobs = c->next_job = 0;
    c->busy = 0;
}

static void on_subscriptions(PGresult *res, void *arg)
{
    struct digest_clock *c = arg;
    if (!res || store_failed(res)) {
        if (res)
            log_warn(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                     "digest clock: cannot read the digest subscriptions");
        c->busy = 0;
        return;
    }
    int64_t now = digest_clock_now(c->b);
    size_t cap = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        struct digest_job job;
        memset(&job, 0, sizeof(job));
        job.subscription_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(job.subscriber, sizeof(job.subscriber), "%s", PQgetvalue(res, i, 1));
        snprintf(job.schedule, sizeof(job.schedule), "%s", PQgetvalue(res, i, 2));
        job.skip_empty = strcmp(PQgetvalue(res, i, 3), "t") == 0;
        int64_t since = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        char err[256];
        if (digest_schedule_parse(job.schedule, &job.parsed, err, sizeof(err)) != SN_OK) {
            log_warn(json_pack("{s:I,s:s,s:s}", "subscription", (json_int_t)job.subscription_id,
                               "schedule", job.schedule, "error", err),
                     "digest clock: a subscription's schedule does not parse; no digest");
            continue;
        }
        struct digest_period due[CATCH_UP_PER_TICK];
        size_t n = digest_due(&job.parsed, since, now, due, CATCH_UP_PER_TICK);
        for (size_t k = 0; k < n; k++) {
            if (c->njobs == cap) {
                cap = cap ? cap * 2 : 16;
                c->jobs = xrealloc(c->jobs, cap * sizeof(*c->jobs));
            }
            job.period = due[k];
            job.previous = digest_previous_period(&job.parsed, due[k]);
            c->jobs[c->njobs++] = job;
        }
    }
    c->next_job = 0;
    run_next_job(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct digest_clock *c = arg;
    (void)fd;
    (void)what;
    if (c->busy || c->stopped || !c->b->store || store_get_state(c->b->store) != STORE_READY)
        return;
    if (store_query(c->b->store,
                    "SELECT s.id, s.subscriber, s.schedule, s.skip_empty, "
                    "floor(extract(epoch FROM greatest(s.digest_since, (SELECT max(d.period_end) "
                    "FROM digests d WHERE d.subscription_id = s.id))))::bigint "
                    "FROM subscriptions s WHERE s.deleted_at IS NULL AND s.enabled "
                    "AND s.mode = 'digest' AND s.schedule IS NOT NULL ORDER BY s.id",
                    0, NULL, on_subscriptions, c) == SN_OK)
        c->busy = 1;
}

struct digest_clock *digest_clock_new(struct broker *b)
{
    struct digest_clock *c = xcalloc(1, sizeof(*c));
    c->b = b;
    c->tick_ev = event_new(b->base, -1, EV_PERSIST, on_tick, c);
    if (!c->tick_ev) sn_oom(0);
    metrics_register("sn_digests_total", METRIC_COUNTER, "Digests stored by this process");
    if (b->conf.digest_clock_offset_ms)
        log_warn(json_pack("{s:I}", "offset_ms", (json_int_t)b->conf.digest_clock_offset_ms),
                 "digest.clock_offset is set: the digest clock runs ahead of the wall clock "
                 "(for tests only)");
    return c;
}

void digest_clock_start(struct digest_clock *c)
{
    int64_t ms = c->b->conf.digest_tick_ms;
    const struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    event_add(c->tick_ev, &tv);
    event_active(c->tick_ev, EV_TIMEOUT, 0);
}

void digest_clock_stop(struct digest_clock *c)
{
    if (c) c->stopped = 1;
}

void digest_clock_free(struct digest_clock *c)
{
    if (!c) return;
    event_free(c->tick_ev);
    free(c->jobs);
    free(c);
}
