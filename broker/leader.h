/* The elected rule engine. Every process runs one; the one that holds a
 * PostgreSQL advisory lock on its own connection evaluates, the others stand
 * by and try the lock every second, so one takes over within seconds when
 * the leader dies (its connection closes and the lock goes with it).
 *
 * The leader reads facts in id order, runs them through the engine
 * (engine.c), and commits each step in one transaction (engine_commit() in
 * the database): the revisions, their outbox rows, the changed episodes and
 * the checkpoint (last fact id, clock). All its writes go through the
 * connection that holds the lock, and each commit is fenced by a generation
 * number, so a leader that lost the lock cannot write. A new leader restores
 * the checkpoint (episodes, then the facts still inside the windows) and
 * continues from the next fact: no revision twice, none missing. */
#ifndef SN_LEADER_H
#define SN_LEADER_H

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "engine.h"
#include "rules.h"

struct leader_conf {
    const char *conninfo;
    int64_t reconnect_max_ms;
    int64_t query_timeout_ms;
    int64_t tick_ms;                      /* 0: no wall-clock tick */
    const struct engine_options *options; /* borrowed */
};

struct leader;

struct leader *leader_new(struct event_base *base, const struct leader_conf *conf);
/* Connects and starts competing for the lock. */
void leader_start(struct leader *l);
/* Swaps the rules (borrowed: the caller frees the previous set after this
 * returns, and keeps rs alive until the next call or leader_free). A leader
 * rebuilds its state under the new rules from the checkpoint; NULL: no rules,
 * nothing is evaluated. */
void leader_set_rules(struct leader *l, const struct rule_set *rs);
/* The database is known to be back (embedded postgres restarted). */
void leader_reconnect_now(struct leader *l);
int leader_is_leader(const struct leader *l);
/* "standby", "restoring", "evaluating", ... for /readyz and logs. */
const char *leader_state(const struct leader *l);
void leader_free(struct leader *l);

/* ---- shared with the backtest: facts as the engine reads them ---- */

/* The columns of facts, in the order leader_feed() reads them. */
#define LEADER_FACT_COLUMNS                                                                        \
    "id, (extract(epoch FROM event_time) * 1000)::bigint, review_id, review_version, kind, "       \
    "jurisdiction, theme, subtheme, partner, seips_domain, priority, incident_type, cause, "       \
    "age_band, need"

/* Runs rows first..end-1 of res (LEADER_FACT_COLUMNS) through e, one
 * engine_add_review() per run of rows of the same review version (or
 * engine_restore_fact() per row when restoring). When hold_last, the last
 * run is left out (a page of a LIMITed query may have cut it): returns the
 * number of rows used. */
int leader_feed(struct engine *e, const PGresult *res, int hold_last, int restoring,
                int64_t *last_id);

#endif
