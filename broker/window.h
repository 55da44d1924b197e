/* The sliding event-time window of one (rule, group): which matching facts it
 * holds, their distinct reviews and jurisdictions, and the breakdowns a notice
 * carries, kept up to date per fact. Pure: no I/O, no globals, no locks; a
 * window belongs to one thread.
 *
 * Times are event times in milliseconds. "now" is the latest time seen by
 * window_add or window_advance and never goes back. With L the length, a fact
 * at time t is in the current period while now - L < t, that is from its add
 * until now reaches t + L. With keep_previous it then belongs to the previous
 * period (now - 2L, now - L] until now reaches t + 2L; without, it is dropped
 * when now reaches t + L.
 *
 * Cost: add, remove and advance are O(log n) amortised, n the facts held, so
 * the cost of a fact does not grow with the history behind the window. */
#ifndef SN_WINDOW_H
#define SN_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* The breakdowns a notice carries, indexes of window_add's breakdown array. */
enum window_dimension {
    WINDOW_CAUSE,
    WINDOW_AGE_BAND,
    WINDOW_PARTNER,
    WINDOW_PRIORITY,
    WINDOW_BREAKDOWNS /* how many */
};

struct window_counts {
    size_t facts;
    size_t reviews;       /* distinct review keys among those facts */
    size_t jurisdictions; /* distinct jurisdictions among those facts */
    size_t tagged;        /* those of the facts added with tagged set */
};

struct window;

/* length_ms > 0, or NULL. keep_previous also tracks the previous period of the
 * same length, for growth (spike) rules. The caller frees with window_free. */
struct window *window_new(int64_t length_ms, int keep_previous);
void window_free(struct window *w);

/* Strings named by the caller: many windows over the same facts (one per rule
 * and group) need not each keep a copy of every review key and label value.
 * name(id) gives the text of a label id (for the listings, which sort by it);
 * ids of reviews and ids of labels are separate spaces, WINDOW_NO_ID for an
 * absent label. A window made so takes facts through window_add_ids only. */
#define WINDOW_NO_ID UINT32_MAX
typedef const char *(*window_name_fn)(uint32_t id, void *arg);
/* per_review: labels that every fact of one review has with the same value
 * (WINDOW_PER_REVIEW_JURISDICTION, WINDOW_PER_REVIEW(WINDOW_CAUSE), ...): they
 * are counted with the review, not per (review, value) pair, which saves a
 * map update per fact. The caller keeps the promise (the engine retracts an
 * amended review's facts before adding the new version's). */
#define WINDOW_PER_REVIEW_JURISDICTION 1u
#define WINDOW_PER_REVIEW(dimension)   (1u << (1 + (dimension)))
struct window *window_new_named(int64_t length_ms, int keep_previous, window_name_fn name,
                                void *arg, unsigned per_review);
/* window_add_tagged with ids: the review's id, the jurisdiction's and the
 * breakdown values' (WINDOW_NO_ID: absent). fact_id must be > 0 and, as such
 * a window keeps no map of them, not held already (the caller's promise).
 * Returns the slot that holds the fact, for window_remove_slot(), or
 * WINDOW_NO_ID when the fact is too old to be held. */
uint32_t window_add_ids(struct window *w, int64_t fact_id, int64_t time_ms, uint32_t review,
                        uint32_t jurisdiction, const uint32_t breakdown[WINDOW_BREAKDOWNS],
                        int tagged);
/* Retracts the fact window_add_ids() put in slot, if slot still holds it
 * (it may have expired, and the slot been reused). Returns 1 if it did. */
int window_remove_slot(struct window *w, uint32_t slot, int64_t fact_id);

/* Adds a fact at time_ms, first advancing now to time_ms if it is later.
 * Facts may come out of time order. Returns 1 when the window holds the fact,
 * 0 when it ignored it: too old for what the window keeps (time_ms <= now - L,
 * or <= now - 2L with keep_previous), an id already held (remove it first to
 * change it), or a NULL review_key. jurisdiction and the breakdown values may
 * be NULL for absent, and breakdown itself NULL for all absent. The window
 * copies the strings. */
int window_add(struct window *w, int64_t fact_id, int64_t time_ms, const char *review_key,
               const char *jurisdiction, const char *const breakdown[WINDOW_BREAKDOWNS]);

/* window_add, marking the fact as tagged: window_counts.tagged counts such
 * facts (the engine tags improvement opportunities, to tell them from family
 * needs). */
int window_add_tagged(struct window *w, int64_t fact_id, int64_t time_ms, const char *review_key,
                      const char *jurisdiction, const char *const breakdown[WINDOW_BREAKDOWNS],
                      int tagged);

/* Retracts a fact (an amended review retracts its old facts before adding the
 * new ones). Returns 1 if it was held, 0 if unknown or already expired. */
int window_remove(struct window *w, int64_t fact_id);

/* Moves now forward to now_ms (never back) and expires what falls out: facts
 * move from the current period to the previous one, or are dropped. Returns
 * how many facts were dropped entirely. */
size_t window_advance(struct window *w, int64_t now_ms);

/* INT64_MIN before the first add or advance. */
int64_t window_now(const struct window *w);

/* The earliest now at which window_advance would change something (t + L of
 * the oldest current fact, t + 2L of the oldest previous one), INT64_MAX when
 * the window holds nothing: when to schedule the next tick. */
int64_t window_next_expiry(const struct window *w);

struct window_counts window_current(const struct window *w);
/* All zero unless keep_previous. */
struct window_counts window_previous(const struct window *w);

/* The listings below call fn once per entry; fn must not change the window. */

/* Current period: each jurisdiction with the number of distinct reviews that
 * have facts of it, sorted by jurisdiction code. */
void window_jurisdictions(const struct window *w,
                          void (*fn)(const char *jurisdiction, size_t reviews, void *arg),
                          void *arg);

/* Current period, one dimension (enum window_dimension): each value present
 * with the number of distinct reviews that have a fact with it, sorted by
 * value. Absent values are not listed. */
void window_breakdown(const struct window *w, int dimension,
                      void (*fn)(const char *value, size_t reviews, void *arg), void *arg);

#endif
