#include "episode.h"

void episode_init(struct episode *e)
{
    *e = (struct episode){0, -1, 0, 0, -1, 0, 0};
}

const char *revision_status_name(enum revision_status status)
{
    static const char *const names[] = {"none", "issued", "escalated", "updated", "resolved"};
    return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}

static enum revision_status publish(struct episode *e, enum revision_status status, int level,
                                    size_t reviews, size_t jurisdictions, int64_t now_ms)
{
    e->revision++;
    e->level = level;
    e->reviews = reviews;
    e->jurisdictions = jurisdictions;
    e->last_revision_at = now_ms;
    return status;
}

enum revision_status episode_step(struct episode *e, const struct episode_policy *policy, int level,
                                  size_t reviews, size_t jurisdictions, int64_t now_ms)
{
    if (!e->active) {
        if (level < 0) return REVISION_NONE;
        /* a new episode (a new notice): its revisions count from 1 */
        e->active = 1;
        e->below_since = -1;
        e->revision = 0;
        return publish(e, REVISION_ISSUED, level, reviews, jurisdictions, now_ms);
    }
    if (level < 0) {
        /* resolve only after the counts stayed low for resolve_after: no flapping */
        if (e->below_since < 0) e->below_since = now_ms;
        if (now_ms - e->below_since < policy->resolve_after_ms) return REVISION_NONE;
        e->active = 0;
        e->below_since = -1;
        return publish(e, REVISION_RESOLVED, -1, reviews, jurisdictions, now_ms);
    }
    e->below_since = -1;
    if (level > e->level)
        return publish(e, REVISION_ESCALATED, level, reviews, jurisdictions, now_ms);
    int changed = reviews != e->reviews || jurisdictions != e->jurisdictions || level != e->level;
    if (changed && now_ms - e->last_revision_at >= policy->repeat_interval_ms)
        return publish(e, REVISION_UPDATED, level, reviews, jurisdictions, now_ms);
    return REVISION_NONE;
}
