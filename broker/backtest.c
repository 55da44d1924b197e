#include "backtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leader.h"
#include "sn.h"

#define PAGE 20000

struct backtest {
    struct store *store;
    struct rule_set *rules;
    struct engine *engine;
    int64_t from_ms, to_ms;
    json_int_t facts;
    json_t *revisions;
    /* keyset of the next page: after this (event_time, id) */
    char after_time[64];
    long long after_id;
    backtest_done_fn done;
    void *arg;
};

static void on_revision(json_t *revision, const char *group_key, int64_t started_at, void *arg)
{
    struct backtest *bt = arg;
    (void)group_key;
    (void)started_at;
    int64_t issued;
    const char *at = json_string_value(json_object_get(revision, "issued_at"));
    if (bt->from_ms != INT64_MIN && at && engine_parse_time(at, &issued) == 0 &&
        issued < bt->from_ms) {
        json_decref(revision);
        return;
    }
    json_array_append_new(bt->revisions, revision);
}

static void finish(struct backtest *bt, const char *error)
{
    json_t *result = NULL;
    if (!error) {
        if (bt->to_ms != INT64_MAX) engine_advance(bt->engine, bt->to_ms);
        result = json_pack("{s:I,s:O}", "facts", bt->facts, "revisions", bt->revisions);
    }
    bt->done(result, error, bt->arg);
    engine_free(bt->engine);
    rule_set_free(bt->rules);
    json_decref(bt->revisions);
    free(bt);
}

static void next_page(struct backtest *bt);

static void on_key(PGresult *res, void *arg)
{
    struct backtest *bt = arg;
    if (!res || store_failed(res) || PQntuples(res) != 1) {
        finish(bt, res ? PQresultErrorMessage(res) : "the database connection was lost");
        return;
    }
    engine_set_id_key(bt->engine, PQgetvalue(res, 0, 0));
    next_page(bt);
}

static void on_page(PGresult *res, void *arg)
{
    struct backtest *bt = arg;
    if (!res || store_failed(res)) {
        finish(bt, res ? PQresultErrorMessage(res) : "the database connection was lost");
        return;
    }
    int n = PQntuples(res);
    int64_t last_id = 0;
    /* a full page may cut the last review: it comes whole with the next */
    int used = leader_feed(bt->engine, res, n == PAGE, 0, &last_id);
    bt->facts += used;
    if (n < PAGE) {
        finish(bt, NULL);
        return;
    }
    snprintf(bt->after_time, sizeof(bt->after_time), "%s", PQgetvalue(res, used - 1, 15));
    bt->after_id = last_id;
    next_page(bt);
}

static void next_page(struct backtest *bt)
{
    char after_id[32], until[32] = "infinity";
    snprintf(after_id, sizeof(after_id), "%lld", bt->after_id);
    if (bt->to_ms != INT64_MAX) engine_format_time(bt->to_ms, until);
    const char *params[] = {bt->after_time, after_id, until};
    /* every version of every review, as they were evaluated live: the engine
     * retracts an amended review's facts itself */
    if (store_query(bt->store,
                    "SELECT " LEADER_FACT_COLUMNS ", event_time::text FROM facts"
                    " WHERE (event_time, id) > ($1::timestamptz, $2::bigint)"
                    "   AND event_time <= $3::timestamptz"
                    " ORDER BY event_time, id LIMIT " SN_STR(PAGE),
                    3, params, on_page, bt) != SN_OK)
        finish(bt, "the database is not available");
}

void backtest_run(struct store *store, struct rule_set *rs, const struct engine_options *opt,
                  int64_t from_ms, int64_t to_ms, backtest_done_fn done, void *arg)
{
    struct backtest *bt = xcalloc(1, sizeof(*bt));
    bt->store = store;
    bt->rules = rs;
    bt->from_ms = from_ms;
    bt->to_ms = to_ms;
    bt->done = done;
    bt->arg = arg;
    bt->revisions = json_array();
    bt->engine = engine_new(rs, opt, on_revision, bt);
    snprintf(bt->after_time, sizeof(bt->after_time), "-infinity");
    /* the live engine's key, so that ids are the live ones */
    if (store_query(store, "SELECT id_key FROM engine_state WHERE id = 1", 0, NULL, on_key, bt) !=
        SN_OK)
        finish(bt, "the database is not available");
}
