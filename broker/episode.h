/* The life of one notice episode (one rule, one group): given the level its
 * window reaches at an event time, decide which revision, if any, to publish.
 * Pure and deterministic: the same levels at the same times give the same
 * revisions, live or replayed, which is what makes backtests honest. */
#ifndef SN_EPISODE_H
#define SN_EPISODE_H

#include <stddef.h>
#include <stdint.h>

enum revision_status {
    REVISION_NONE = 0,
    REVISION_ISSUED,    /* the counts reached the lowest level */
    REVISION_ESCALATED, /* a higher level: published at once */
    REVISION_UPDATED,   /* same episode, other counts (or a lower level still held) */
    REVISION_RESOLVED,  /* below the lowest level for resolve_after */
};

struct episode_policy {
    int64_t repeat_interval_ms; /* updates at most this often */
    int64_t resolve_after_ms;   /* below the lowest level this long to resolve */
};

struct episode {
    int active;
    int level;    /* of the last revision */
    int revision; /* number of the last revision, 1, 2, ... */
    int64_t last_revision_at;
    int64_t below_since;           /* -1 while a level holds */
    size_t reviews, jurisdictions; /* counts of the last revision */
};

/* A new, inactive episode. */
void episode_init(struct episode *e);
/* level: the highest level reached now (-1: none). Returns the revision to
 * publish and updates e (revision number, level, counts) when there is one. */
enum revision_status episode_step(struct episode *e, const struct episode_policy *policy, int level,
                                  size_t reviews, size_t jurisdictions, int64_t now_ms);
const char *revision_status_name(enum revision_status status);

#endif
