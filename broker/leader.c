#include "leader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "sn.h"
#include "store.h"

#define LOCK_SQL      "SELECT pg_try_advisory_lock(hashtext('sn-broker rule engine'))"
#define RETRY_MS      1000 /* a standby tries the lock this often: takeover within seconds */
#define PAGE          5000 /* facts per step */
#define REBUILD_PAGE  20000
#define FACTS_CHANNEL "sn_facts"
#define PURGE_CHANNEL "sn_purge" /* sn_jurisdiction_purge(): facts were deleted */

enum phase {
    PHASE_DISCONNECTED, /* the connection is not ready */
    PHASE_STANDBY,      /* another process holds the lock (or no rules) */
    PHASE_RESTORING,    /* leader: rebuilding from the checkpoint */
    PHASE_EVALUATING,   /* leader: following the facts */
};

struct leader {
    struct event_base *base;
    struct leader_conf conf;
    struct store *store;
    const struct rule_set *rules;
    struct engine *engine;
    char name[300];
    enum phase phase;

    /* one query at a time; a result for an older epoch (the rules changed,
     * the engine was rebuilt meanwhile) is ignored */
    int busy;
    unsigned epoch, query_epoch;
    struct event *retry_ev, *tick_ev;

    /* the checkpoint as committed */
    long long generation;
    int64_t last_fact_id;
    int64_t restore_clock;
    int64_t restore_after; /* rebuild paging */
    /* what the step in progress will commit */
    int64_t step_last_fact_id;
    json_t *revisions;
    int more_facts, tick_pending;
    /* engine_state.purges as the checkpoint read it; the rebuild corrects
     * (publishes lowered counts at once) when it is ahead of
     * purges_corrected, and each commit records it as corrected */
    long long purges;
    int correct;
    int correct_pending; /* a correcting rebuild not committed yet */
};

static void resume(struct leader *l);
static void fetch_facts(struct leader *l);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_phase(struct leader *l, enum phase phase)
{
    l->phase = phase;
    metrics_gauge_set("sn_engine_leader", "",
                      phase == PHASE_RESTORING || phase == PHASE_EVALUATING);
}

const char *leader_state(const struct leader *l)
{
    static const char *const names[] = {"disconnected", "standby", "restoring", "evaluating"};
    if (l->phase == PHASE_STANDBY && !l->rules) return "no rules";
    return names[l->phase];
}

int leader_is_leader(const struct leader *l)
{
    return l->phase == PHASE_RESTORING || l->phase == PHASE_EVALUATING;
}

/* ---- facts ---- */

static int same_review(const PGresult *res, int a, int b)
{
    static const int columns[] = {2, 3, 5}; /* review_id, review_version, jurisdiction */
    for (size_t i = 0; i < SN_ARRAY_LEN(columns); i++)
        if (strcmp(PQgetvalue(res, a, columns[i]), PQgetvalue(res, b, columns[i])) != 0) return 0;
    return 1;
}

static void fact_from_row(const PGresult *res, int row, struct engine_fact *f)
{
    memset(f, 0, sizeof(*f));
    f->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    f->time_ms = strtoll(PQgetvalue(res, row, 1), NULL, 10);
    f->review_id = PQgetvalue(res, row, 2);
    f->review_version = atoi(PQgetvalue(res, row, 3));
    /* the label columns follow in enum fact_label order */
    for (int k = 0; k < FACT_LABEL_COUNT; k++)
        f->labels.values[k] = PQgetisnull(res, row, 4 + k) ? NULL : PQgetvalue(res, row, 4 + k);
}

int leader_feed(struct engine *e, const PGresult *res, int hold_last, int restoring,
                int64_t *last_id)
{
    int n = PQntuples(res), end = n;
    if (hold_last && n > 0) {
        int start = n - 1;
        while (start > 0 && same_review(res, start - 1, start))
            start--;
        if (start > 0) end = start;
    }
    struct engine_fact *facts = NULL;
    size_t cap = 0;
    for (int i = 0; i < end;) {
        int j = i;
        while (j < end && same_review(res, i, j))
            j++;
        if ((size_t)(j - i) > cap) {
            cap = (size_t)(j - i) * 2;
            facts = xrealloc(facts, cap * sizeof(*facts));
        }
        for (int k = i; k < j; k++)
            fact_from_row(res, k, &facts[k - i]);
        if (restoring)
            for (int k = 0; k < j - i; k++)
                engine_restore_fact(e, &facts[k]);
        else
            engine_add_review(e, facts, (size_t)(j - i));
        i = j;
    }
    free(facts);
    if (end > 0) *last_id = strtoll(PQgetvalue(res, end - 1, 0), NULL, 10);
    return end;
}

/* ---- queries ---- */

static void query(struct leader *l, const char *sql, int n, const char *const *params,
                  store_result_fn cb)
{
    l->busy = 1;
    l->query_epoch = l->epoch;
    if (store_query(l->store, sql, n, params, cb, l) != SN_OK)
        l->busy = 0; /* not ready: the state hook starts over */
}

/* 1 when res answers the current step; otherwise what comes next is taken
 * care of (a lost connection by the state hook, a stale epoch by resume). */
static int settle(struct leader *l, const PGresult *res)
{
    l->busy = 0;
    if (!res) return 0;
    if (l->query_epoch != l->epoch) {
        resume(l);
        return 0;
    }
    return 1;
}

static void retry_later(struct leader *l)
{
    struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
}

static void log_db_error(const PGresult *res, const char *what)
{
    log_error(json_pack("{s:s}", "error", res ? PQresultErrorMessage(res) : "connection lost"),
              "rule engine: %s failed", what);
}

/* ---- leadership ---- */

static void on_revision(json_t *revision, const char *group_key, int64_t started_at, void *arg)
{
    struct leader *l = arg;
    char started[32], now[32];
    engine_format_time(started_at, started);
    json_object_set_new(revision, "group_key", json_string(group_key));
    json_object_set_new(revision, "started_at", json_string(started));
    /* published: when the broker issued it; kept apart: the event time that
     * decided it (a review's finalized_at, finer than a notice may say) */
    engine_format_time(wall_ms(), now);
    json_object_set(revision, "event_time", json_object_get(revision, "issued_at"));
    json_object_set_new(revision, "issued_at", json_string(now));
    json_array_append_new(l->revisions, revision);
}

static void restore_facts_page(struct leader *l);

/* The checkpoint is rebuilt (episodes, then the facts still in a window):
 * evaluate from the fact after it. */
static void start_evaluating(struct leader *l)
{
    engine_restore_done(l->engine, l->correct);
    struct engine_stats st = engine_get_stats(l->engine);
    log_info(json_pack("{s:I,s:I,s:I,s:I,s:b}", "last_fact_id", (json_int_t)l->last_fact_id,
                       "facts_held", (json_int_t)st.facts_held, "groups", (json_int_t)st.groups,
                       "active_notices", (json_int_t)st.active_episodes, "after_purge", l->correct),
             "rule engine restored; evaluating");
    l->correct_pending = l->correct;
    l->correct = 0;
    set_phase(l, PHASE_EVALUATING);
    l->step_last_fact_id = l->last_fact_id;
    l->more_facts = 1;
    resume(l);
}

static void on_rebuild_page(PGresult *res, void *arg)
{
    struct leader *l = arg;
    if (!settle(l, res)) return;
    if (store_failed(res)) {
        log_db_error(res, "reading the facts of the windows");
        retry_later(l);
        return;
    }
    int64_t last = l->restore_after;
    leader_feed(l->engine, res, 0, 1, &last);
    l->restore_after = last;
    if (PQntuples(res) == REBUILD_PAGE) {
        restore_facts_page(l);
        return;
    }
    start_evaluating(l);
}

static void restore_facts_page(struct leader *l)
{
    char after[32], upto[32], since[32];
    snprintf(after, sizeof(after), "%lld", (long long)l->restore_after);
    snprintf(upto, sizeof(upto), "%lld", (long long)l->last_fact_id);
    int64_t from = l->restore_clock - engine_horizon(l->engine);
    snprintf(since, sizeof(since), "%lld", (long long)from);
    const char *params[] = {after, upto, since};
    /* facts evaluated up to the checkpoint that can still be in a window,
     * without those an evaluated later version of their review retracted */
    query(l,
          "SELECT " LEADER_FACT_COLUMNS " FROM facts f"
          " WHERE f.id > $1::bigint AND f.id <= $2::bigint"
          "   AND f.event_time >= to_timestamp($3::bigint / 1000.0)"
          "   AND (f.retracted_at IS NULL OR NOT EXISTS ("
          "        SELECT 1 FROM facts n WHERE n.jurisdiction = f.jurisdiction"
          "           AND n.review_id = f.review_id AND n.review_version > f.review_version"
          "           AND n.id <= $2::bigint))"
          " ORDER BY f.id LIMIT " SN_STR(REBUILD_PAGE),
          3, params, on_rebuild_page);
}

static void on_episodes(PGresult *res, void *arg)
{
    struct leader *l = arg;
    if (!settle(l, res)) return;
    if (store_failed(res)) {
        log_db_error(res, "reading the episodes");
        retry_later(l);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *group = json_loads(PQgetvalue(res, i, 2), 0, NULL);
        json_t *st = json_loads(PQgetvalue(res, i, 5), 0, NULL);
        struct engine_episode ep = {.rule = PQgetvalue(res, i, 0),
                                    .group_key = PQgetvalue(res, i, 1),
                                    .group = group,
                                    .notice_id = PQgetvalue(res, i, 3),
                                    .started_at = strtoll(PQgetvalue(res, i, 4), NULL, 10)};
        json_int_t active = 0, level = -1, revision = 0, last = 0, below = -1, reviews = 0,
                   jurisdictions = 0;
        if (json_unpack(st, "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "active", &active, "level", &level,
                        "revision", &revision, "last_revision_at", &last, "below_since", &below,
                        "reviews", &reviews, "jurisdictions", &jurisdictions) == 0 &&
            group) {
            ep.state = (struct episode){(int)active, (int)level,      (int)revision,        last,
                                        below,       (size_t)reviews, (size_t)jurisdictions};
            engine_restore_episode(l->engine, &ep);
        } else {
            log_warn(json_pack("{s:s,s:s}", "rule", ep.rule, "group", ep.group_key),
                     "rule engine: an unreadable episode state is ignored");
        }
        json_decref(group);
        json_decref(st);
    }
    l->restore_after = 0;
    if (l->restore_clock == INT64_MIN || l->last_fact_id == 0)
        start_evaluating(l); /* nothing evaluated yet: no window to rebuild */
    else
        restore_facts_page(l);
}

static void on_checkpoint(PGresult *res, void *arg)
{
    struct leader *l = arg;
    if (!settle(l, res)) return;
    if (store_failed(res) || PQntuples(res) != 1) {
        log_db_error(res, "reading the checkpoint");
        retry_later(l);
        return;
    }
    l->generation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    l->last_fact_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    engine_set_id_key(l->engine, PQgetvalue(res, 0, 3));
    l->purges = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    l->correct = l->purges > strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    l->restore_clock =
        PQgetisnull(res, 0, 2) ? INT64_MIN : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (l->restore_clock != INT64_MIN) engine_restore_clock(l->engine, l->restore_clock);
    query(l,
          "SELECT rule, group_key, group_labels::text, notice_id, started_at, state::text"
          " FROM episodes ORDER BY rule, group_key",
          0, NULL, on_episodes);
}

/* Rebuilds the engine from the checkpoint (we hold the lock). */
static void start_restore(struct leader *l)
{
    l->epoch++;
    engine_free(l->engine);
    json_array_clear(l->revisions);
    l->engine = engine_new(l->rules, l->conf.options, on_revision, l);
    l->more_facts = l->tick_pending = 0;
    set_phase(l, PHASE_RESTORING);
    query(l,
          "SELECT generation, last_fact_id, clock, id_key, purges, purges_corrected"
          " FROM engine_state WHERE id = 1",
          0, NULL, on_checkpoint);
}

static void on_lock(PGresult *res, void *arg)
{
    struct leader *l = arg;
    if (!settle(l, res)) return;
    if (store_failed(res)) {
        log_db_error(res, "trying the leader lock");
        retry_later(l);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        retry_later(l);
        return;
    }
    log_info(json_pack("{s:s}", "process", l->name), "rule engine: elected leader");
    start_restore(l);
}

static void try_lock(struct leader *l)
{
    if (l->busy || !l->rules || l->phase != PHASE_STANDBY) return;
    query(l, LOCK_SQL, 0, NULL, on_lock);
}

static void on_unlocked(PGresult *res, void *arg)
{
    struct leader *l = arg;
    l->busy = 0;
    if (res) retry_later(l);
}

/* Stops leading: the engine goes, the lock is released, and the process
 * stands by (competing again only while it has rules). */
static void give_up_lock(struct leader *l)
{
    engine_free(l->engine);
    l->engine = NULL;
    l->epoch++;
    set_phase(l, PHASE_STANDBY);
    query(l, "SELECT pg_advisory_unlock_all()", 0, NULL, on_unlocked);
}

/* ---- evaluating ---- */

static void save_episode(const struct engine_episode *ep, void *arg)
{
    json_t *episodes = arg;
    json_array_append_new(
        episodes,
        json_pack("{s:s,s:s,s:O,s:s,s:I,s:{s:i,s:i,s:i,s:I,s:I,s:I,s:I}}", "rule", ep->rule,
                  "group_key", ep->group_key, "group", ep->group, "notice_id", ep->notice_id,
                  "started_at", (json_int_t)ep->started_at, "state", "active", ep->state.active,
                  "level", ep->state.level, "revision", ep->state.revision, "last_revision_at",
                  (json_int_t)ep->state.last_revision_at, "below_since",
                  (json_int_t)ep->state.below_since, "reviews", (json_int_t)ep->state.reviews,
                  "jurisdictions", (json_int_t)ep->state.jurisdictions));
}

static void publish_metrics(struct leader *l, const json_t *revisions)
{
    size_t i;
    json_t *rev;
    json_array_foreach(revisions, i, rev)
    {
        char labels[64];
        snprintf(labels, sizeof(labels), "status=\"%s\"",
                 json_string_value(json_object_get(rev, "status")));
        metrics_counter_add("sn_notice_revisions_total", labels, 1);
        log_info(json_pack("{s:O,s:O,s:O,s:O,s:O}", "notice", json_object_get(rev, "id"),
                           "revision", json_object_get(rev, "revision"), "status",
                           json_object_get(rev, "status"), "rule", json_object_get(rev, "rule"),
                           "severity", json_object_get(rev, "severity")),
                 "notice revision stored");
    }
    struct engine_stats st = engine_get_stats(l->engine);
    metrics_gauge_set("sn_engine_facts_held", "", (double)st.facts_held);
    metrics_gauge_set("sn_engine_groups", "", (double)st.groups);
    metrics_gauge_set("sn_notices_active", "", (double)st.active_episodes);
}

static void on_commit(PGresult *res, void *arg)
{
    struct leader *l = arg;
    json_t *revisions = l->revisions;
    l->revisions = json_array();
    if (!settle(l, res)) {
        json_decref(revisions);
        return;
    }
    if (store_failed(res)) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        log_db_error(res, "committing a step");
        json_decref(revisions);
        if (msg && strstr(msg, "sn_fenced")) {
            /* another leader wrote: we must not; give the lock up */
            give_up_lock(l);
        } else {
            start_restore(l); /* our state ran ahead of the database's */
        }
        return;
    }
    l->generation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    l->correct_pending = 0;
    metrics_counter_add("sn_engine_facts_total", "",
                        (double)(l->step_last_fact_id - l->last_fact_id));
    l->last_fact_id = l->step_last_fact_id;
    publish_metrics(l, revisions);
    json_decref(revisions);
    resume(l);
}

/* Commits what the engine decided since the last commit, if anything. */
static void commit_step(struct leader *l, int clock_moved)
{
    json_t *episodes = json_array();
    engine_take_changes(l->engine, save_episode, episodes);
    if (json_array_size(episodes) == 0 && json_array_size(l->revisions) == 0 && !clock_moved &&
        l->step_last_fact_id == l->last_fact_id && !l->correct_pending) {
        json_decref(episodes);
        resume(l);
        return;
    }
    int64_t clock = engine_clock(l->engine);
    json_t *c = json_pack("{s:I,s:I,s:o,s:s,s:o,s:O,s:I}", "generation", (json_int_t)l->generation,
                          "last_fact_id", (json_int_t)l->step_last_fact_id, "clock",
                          clock == INT64_MIN ? json_null() : json_integer(clock), "leader", l->name,
                          "episodes", episodes, "revisions", l->revisions, "purges_corrected",
                          (json_int_t)l->purges);
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    const char *params[] = {text};
    query(l, "SELECT engine_commit($1::jsonb)", 1, params, on_commit);
    free(text);
}

static void on_facts(PGresult *res, void *arg)
{
    struct leader *l = arg;
    if (!settle(l, res)) return;
    if (store_failed(res)) {
        log_db_error(res, "reading new facts");
        l->more_facts = 1;
        retry_later(l);
        return;
    }
    int n = PQntuples(res);
    int64_t last = l->step_last_fact_id;
    /* a full page may end in the middle of a review: keep that one for the
     * next page, so that a review is evaluated whole, as in a backtest */
    leader_feed(l->engine, res, n == PAGE, 0, &last);
    l->step_last_fact_id = last;
    l->more_facts = n == PAGE;
    commit_step(l, 0);
}

static void fetch_facts(struct leader *l)
{
    char after[32];
    snprintf(after, sizeof(after), "%lld", (long long)l->step_last_fact_id);
    const char *params[] = {after};
    l->more_facts = 0;
    query(l,
          "SELECT " LEADER_FACT_COLUMNS
          " FROM facts WHERE id > $1::bigint ORDER BY id LIMIT " SN_STR(PAGE),
          1, params, on_facts);
}

static void tick(struct leader *l)
{
    l->tick_pending = 0;
    int64_t before = engine_clock(l->engine);
    engine_advance(l->engine, wall_ms());
    commit_step(l, engine_clock(l->engine) != before);
}

/* Starts whatever the current phase needs next, unless a query is in flight
 * (its callback comes back here). */
static void resume(struct leader *l)
{
    if (l->busy) return;
    switch (l->phase) {
    case PHASE_DISCONNECTED: break;
    case PHASE_STANDBY: try_lock(l); break;
    case PHASE_RESTORING: start_restore(l); break;
    case PHASE_EVALUATING:
        if (l->more_facts)
            fetch_facts(l);
        else if (l->tick_pending)
            tick(l);
        break;
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resume(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct leader *l = arg;
    (void)fd;
    (void)what;
    l->tick_pending = 1;
    resume(l);
}

static void on_state(struct store *s, enum store_state state, void *arg)
{
    struct leader *l = arg;
    (void)s;
    if (state != STORE_READY) {
        if (leader_is_leader(l))
            log_warn(json_pack("{s:s}", "database", store_state_name(state)),
                     "rule engine: lost the database connection, and the leadership with it");
        l->epoch++;
        engine_free(l->engine);
        l->engine = NULL;
        json_array_clear(l->revisions);
        l->busy = 0;
        set_phase(l, PHASE_DISCONNECTED);
        return;
    }
    set_phase(l, PHASE_STANDBY);
    resume(l);
}

static void on_notify(struct store *s, const char *channel, const char *payload, void *arg)
{
    struct leader *l = arg;
    (void)s;
    if (strcmp(channel, PURGE_CHANNEL) == 0 && leader_is_leader(l)) {
        /* the windows hold facts that are gone: rebuild them from the
         * database and publish what the counts are now */
        log_info(json_pack("{s:s}", "jurisdiction", payload),
                 "rule engine: a jurisdiction's data was purged; evaluating the notices again");
        l->epoch++; /* the checkpoint's purge count makes the rebuild correct */
        set_phase(l, PHASE_RESTORING);
        resume(l);
        return;
    }
    if (strcmp(channel, FACTS_CHANNEL) != 0 || l->phase != PHASE_EVALUATING) return;
    l->more_facts = 1;
    resume(l);
}

struct leader *leader_new(struct event_base *base, const struct leader_conf *conf)
{
    struct leader *l = xcalloc(1, sizeof(*l));
    l->base = base;
    l->conf = *conf;
    l->revisions = json_array();
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(l->name, sizeof(l->name), "%s:%ld", host, (long)getpid());
    l->retry_ev = evtimer_new(base, on_retry, l);
    l->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, l);
    if (!l->retry_ev || !l->tick_ev) sn_oom(0);
    metrics_register("sn_engine_leader", METRIC_GAUGE,
                     "1 when this process evaluates the rules (holds the leader lock)");
    metrics_register("sn_engine_facts_total", METRIC_COUNTER, "Facts evaluated by this process");
    metrics_register("sn_engine_facts_held", METRIC_GAUGE, "Facts held in the rule windows");
    metrics_register("sn_engine_groups", METRIC_GAUGE, "Rule groups (episodes) known");
    metrics_register("sn_notices_active", METRIC_GAUGE, "Notices issued and not resolved");
    metrics_register("sn_notice_revisions_total", METRIC_COUNTER,
                     "Notice revisions stored, by status");
    metrics_gauge_set("sn_engine_leader", "", 0);
    const struct store_hooks hooks = {on_state, on_notify, l};
    l->store = store_new(base, conf->conninfo, conf->reconnect_max_ms, &hooks);
    store_set_query_timeout(l->store, conf->query_timeout_ms);
    store_set_application_name(l->store, "sn-broker-engine");
    store_listen(l->store, FACTS_CHANNEL);
    store_listen(l->store, PURGE_CHANNEL);
    return l;
}

void leader_start(struct leader *l)
{
    if (l->conf.tick_ms > 0) {
        struct timeval tv = {l->conf.tick_ms / 1000, (l->conf.tick_ms % 1000) * 1000};
        event_add(l->tick_ev, &tv);
    }
    store_start(l->store);
}

void leader_reconnect_now(struct leader *l)
{
    store_reconnect_now(l->store);
}

void leader_set_rules(struct leader *l, const struct rule_set *rs)
{
    int was_leader = leader_is_leader(l);
    l->rules = rs;
    l->epoch++;
    engine_free(l->engine);
    l->engine = NULL;
    json_array_clear(l->revisions);
    if (!was_leader) {
        resume(l);
        return;
    }
    if (!rs) {
        give_up_lock(l); /* nothing to evaluate: let another process lead */
        return;
    }
    set_phase(l, PHASE_RESTORING);
    resume(l);
}

void leader_free(struct leader *l)
{
    if (!l) return;
    store_free(l->store);
    engine_free(l->engine);
    json_decref(l->revisions);
    event_free(l->retry_ev);
    event_free(l->tick_ev);
    free(l);
}
