/* Facts through rules -> notice revisions. For each rule and each group of
 * its matching facts, a sliding event-time window (window.c) and a notice
 * episode (episode.c); the engine feeds them facts and the passing of time,
 * and turns each revision an episode decides into a notice revision object
 * (schemas/safety-notice.v1.json). Pure: no I/O, no clock of its own. The
 * live leader (leader.c) and the backtest (backtest.c) both run this code, so
 * the same facts in the same order give the same revisions.
 *
 * Time is event time: the engine's clock is the latest of the facts' times
 * and of the times given to engine_advance() (the live wall-clock tick). When
 * the clock moves, everything that falls due on the way (facts leaving a
 * window, a resolve_after or repeat_interval running out) is evaluated at the
 * moment it falls due, in time order, so a revision's issued_at is that moment
 * whatever the size of the step.
 *
 * Cost: one fact costs O(rules + log n) with n the facts held, whatever the
 * history behind the windows, plus a pass over the groups when one of them
 * falls due (groups: rules times the values of their group_by labels). */
#ifndef SN_ENGINE_H
#define SN_ENGINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "episode.h"
#include "rules.h"

struct engine_options {
    /* A breakdown cell below min_cell is reported as the string "<min_cell"
     * (0 or 1: every count is reported). */
    size_t min_cell;
    /* Jurisdictions counted but never named in a notice; borrowed, must
     * outlive the engine. */
    const char *const *unnamed;
    size_t unnamed_count;
    /* The topic of a rule that names none (NULL: "safety-notices"); borrowed. */
    const char *default_topic;
};

/* One stored fact. The strings are borrowed for the duration of the call. */
struct engine_fact {
    int64_t id;
    int64_t time_ms; /* event time: the review's finalized_at */
    const char *review_id;
    int review_version;
    struct fact_labels labels; /* values[FACT_JURISDICTION] and [FACT_KIND] set */
};

/* An episode as persisted: enough to resume it after a restart or a
 * takeover. The strings and group are borrowed for the duration of the call. */
struct engine_episode {
    const char *rule;
    const char *group_key;
    const json_t *group;
    const char *notice_id; /* "" before the first revision */
    int64_t started_at;    /* issued_at of the notice's first revision */
    struct episode state;
};

/* Receives each revision (a new object, owned by the callee) in the order the
 * engine decides them, with the key of its group and the time its episode
 * started (what storage keys a notice by; neither is part of the revision). */
typedef void (*engine_revision_fn)(json_t *revision, const char *group_key, int64_t started_at,
                                   void *arg);

/* rs and opt are borrowed and must outlive the engine. */
struct engine *engine_new(const struct rule_set *rs, const struct engine_options *opt,
                          engine_revision_fn on_revision, void *arg);
void engine_free(struct engine *e);
/* The secret that keys notice ids (engine_state.id_key), copied; set it
 * before the first fact. */
void engine_set_id_key(struct engine *e, const char *key);

/* How far back, from the clock, facts can still count: the longest window,
 * doubled for a growth rule (its previous window). */
int64_t engine_horizon(const struct engine *e);
/* INT64_MIN before the first fact or advance. */
int64_t engine_clock(const struct engine *e);

/* Rebuilding the state of a checkpoint, before any engine_add_review: the
 * clock, then the episodes, then the facts processed up to the checkpoint
 * (in the order they were processed; those outside every window are
 * ignored), then engine_restore_done(). Nothing is evaluated until then. An
 * episode of a rule not in the set is ignored (returns 0). */
void engine_restore_clock(struct engine *e, int64_t clock_ms);
int engine_restore_episode(struct engine *e, const struct engine_episode *ep);
void engine_restore_fact(struct engine *e, const struct engine_fact *f);
/* Evaluates every group at the clock. After a checkpoint of the same rules
 * this publishes nothing; after a rules change it publishes what the new rules
 * decide. correct: facts were deleted since the checkpoint (a jurisdiction's
 * purge), and what the counts are now is published at once, as an update or
 * a resolution, without waiting for repeat_interval or resolve_after. */
void engine_restore_done(struct engine *e, int correct);

/* The facts of one version of one review (all with the same review id and
 * version). A later version retracts the facts of the earlier ones; facts of
 * an older version than one already seen are ignored. */
void engine_add_review(struct engine *e, const struct engine_fact *facts, size_t n);

/* Moves the clock to now_ms (never back), evaluating what falls due. */
void engine_advance(struct engine *e, int64_t now_ms);

/* Calls fn for each episode whose state changed since the last call (a
 * revision, or the counts going below the lowest level): what a checkpoint
 * writes. Returns how many. */
size_t engine_take_changes(struct engine *e, void (*fn)(const struct engine_episode *ep, void *arg),
                           void *arg);

struct engine_stats {
    size_t groups;          /* (rule, group) pairs seen */
    size_t active_episodes; /* notices not resolved */
    size_t facts_held;      /* facts in windows, summed over the windows */
    size_t reviews_tracked; /* reviews remembered for retraction */
};
struct engine_stats engine_get_stats(const struct engine *e);

/* "2026-11": the month of a time, as notices show dates. */
void engine_format_month(int64_t ms, char buf[8]);
/* RFC 3339 UTC with seconds: "2026-11-20T14:03:11Z". */
void engine_format_time(int64_t ms, char buf[32]);

/* "2026-11-20T14:03:11Z", "2026-11-20T08:03:11.250-06:00" (RFC 3339) or
 * "2026-11-20" (midnight UTC) -> ms. Returns 0, or -1 when text is neither. */
int engine_parse_time(const char *text, int64_t *ms);

#endif
