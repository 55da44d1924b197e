/* The digest clock: every digest.tick, each process looks for digest
 * subscriptions whose periods have ended since their last digest (or since
 * the subscription became a digest), oldest first, and for each due period
 * counts what happened in the database, builds and renders the digest
 * (digest.c), and stores it with its outbox row (digest_store() of migration
 * 008), from where the dispatcher delivers it.
 *
 * Several processes: each runs the clock; a period is stored once because
 * digests are UNIQUE (subscription_id, period_start) and digest_store()
 * inserts with ON CONFLICT DO NOTHING, writing the outbox row only when its
 * own insert happened, in the same transaction. That holds across restarts,
 * a leader change in the middle of a computation and a crash between
 * computing and storing, which the rule engine's advisory lock alone would
 * not (and digests must go out where no rules are loaded, where nobody holds
 * that lock). The cost is that two processes may both count a period at the
 * same moment; the counting query skips periods already stored. */
#ifndef SN_DIGEST_CLOCK_H
#define SN_DIGEST_CLOCK_H

#include <jansson.h>
#include <stdint.h>

#include "digest.h"

struct broker;
struct digest_clock;

struct digest_clock *digest_clock_new(struct broker *b);
/* Starts the tick (the broker's store must be started). */
void digest_clock_start(struct digest_clock *c);
/* Ticks no more; a computation in flight finishes. */
void digest_clock_stop(struct digest_clock *c);
void digest_clock_free(struct digest_clock *c);

/* Now on the digest clock, in Unix seconds: the wall clock plus
 * digest.clock_offset (0 outside tests). */
int64_t digest_clock_now(const struct broker *b);

/* One digest to compute. */
struct digest_job {
    long long subscription_id;
    char subscriber[128];
    char schedule[256];
    int skip_empty;
    struct digest_schedule parsed;
    struct digest_period period, previous;
};

/* Counts what the digest of job says and builds it (digest_build()). cb
 * gets the data (a new reference the callee owns), or NULL with a reason
 * when the database failed; already_stored is 1 when the period has been
 * stored meanwhile. job is copied. Returns SN_ERR_UNAVAILABLE (and does not
 * call cb) when the store is not ready. */
typedef void (*digest_computed_fn)(json_t *data, int already_stored, const char *error, void *arg);
enum sn_err digest_compute(struct broker *b, const struct digest_job *job, digest_computed_fn cb,
                           void *arg);

/* The period before p: [fire time before p.start, p.start). */
struct digest_period digest_previous_period(const struct digest_schedule *s,
                                            struct digest_period p);

#endif
