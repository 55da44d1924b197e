/* What a set of rules would have published: the stored facts replayed in
 * event-time order through the engine (engine.c, the code the live leader
 * runs), publishing nothing. Runs on the loop, a page of facts at a time, so
 * requests go on being served meanwhile. */
#ifndef SN_BACKTEST_H
#define SN_BACKTEST_H

#include <jansson.h>
#include <stdint.h>

#include "engine.h"
#include "rules.h"
#include "store.h"

/* result: {"facts": n, "revisions": [...]} (the callee owns it), or NULL when
 * the database failed (error says how). */
typedef void (*backtest_done_fn)(json_t *result, const char *error, void *arg);

/* Takes rs (freed when done). Revisions issued before from_ms are left out;
 * the facts before it are still replayed (from the first one: an episode
 * under way at from_ms goes on with its revision numbers and timings, exactly
 * as a replay of everything would have it); facts after
 * to_ms are not read, and the clock is moved to to_ms at the end, so what
 * falls due by then (resolutions) is included. INT64_MIN / INT64_MAX: no
 * bound (then the clock stops at the last fact). */
void backtest_run(struct store *store, struct rule_set *rs, const struct engine_options *opt,
                  int64_t from_ms, int64_t to_ms, backtest_done_fn done, void *arg);

#endif
