/* Digests: periodic summaries for a subscription in mode digest. This module
 * is pure (no I/O): schedules and their periods in a named time zone, and a
 * digest rendered from the data the database counted (digest_clock.c asks
 * for it, stores the result and hands it to the outbox; digest_http.c
 * previews it).
 *
 * Schedule grammar (case-insensitive keywords, one space or more between
 * words):
 *
 *   daily HH:MM ZONE
 *   weekly DAY HH:MM ZONE        DAY: mon tue wed thu fri sat sun (or full names)
 *   cron "M H DOM MON DOW" ZONE  five cron fields, in double quotes
 *
 * ZONE is an IANA zone name (America/Chicago, Europe/Berlin, UTC) that exists
 * in the system's zone database. Cron fields: minute 0-59, hour 0-23,
 * day of month 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat
 * (0 and 7 are Sunday); each a comma-separated list of *, N or N-M, each
 * optionally /STEP. When both day fields are restricted, a day matches when
 * either does (as Vixie cron). daily and weekly are cron schedules with one
 * time of day.
 *
 * Local times are those of ZONE, daylight-saving changes included: a time
 * that does not exist on a day (the spring-forward gap) fires as far after
 * the gap's start as it was meant to be into it (02:30 -> 03:30 daylight
 * time); a time that occurs twice (the fall-back overlap) fires once, at its
 * first occurrence. A period is the time between two consecutive fire times,
 * [start, end): so it is 23 or 25 hours long across a change. */
#ifndef SN_DIGEST_H
#define SN_DIGEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sn.h"

#define DIGEST_ZONE_MAX 64
#define DIGEST_TOP      5 /* themes in each ranking */

struct digest_schedule {
    uint64_t minutes; /* bit n: minute n */
    uint32_t hours;
    uint32_t days; /* bit n: day n of the month (1-31) */
    uint16_t months;
    uint8_t weekdays; /* bit 0 Sunday ... bit 6 Saturday */
    int days_restricted, weekdays_restricted;
    char zone[DIGEST_ZONE_MAX];
};

/* Parses text (the grammar above) and checks that the zone exists and that
 * the schedule fires at least once in the next 8 years. On error returns
 * SN_ERR_INVAL with a sentence in err. */
enum sn_err digest_schedule_parse(const char *text, struct digest_schedule *out, char *err,
                                  size_t errlen);

/* The first fire time after t (Unix seconds), or -1 if none within 8 years. */
int64_t digest_next(const struct digest_schedule *s, int64_t t);
/* The last fire time at or before t, or -1 if none within 8 years. */
int64_t digest_prev(const struct digest_schedule *s, int64_t t);

struct digest_period {
    int64_t start, end; /* [start, end), Unix seconds */
};

/* The period that contains t. Returns 0, or -1 when the schedule has none. */
int digest_period_containing(const struct digest_schedule *s, int64_t t, struct digest_period *p);
/* The periods that ended in (since, now], oldest first, at most max of
 * them: what is due when the last period sent ended at since (or the
 * subscription began then). Returns how many were written to out. */
size_t digest_due(const struct digest_schedule *s, int64_t since, int64_t now,
                  struct digest_period *out, size_t max);

/* The bounds over which a digest of period p counts reviews (by their
 * finalized_at), and the previous bounds for the change. A leadership group
 * (a subscriber that is not a jurisdiction code: only an admin manages its
 * subscriptions) gets the period itself and the one before (returns 0). A
 * jurisdiction, which chooses its own schedule, gets whole UTC months (returns
 * 1): from the month holding p.start through the month holding p.end - 1 s,
 * and as many months before. previous: in, the schedule's period before p;
 * out, the bounds to compare with. Otherwise a daily (or minute-by-minute) digest
 * would date reviews finer than the month the partnership allows, as
 * /v1/stats/themes does not for a non-admin. */
int digest_count_window(const char *subscriber, struct digest_period p, struct digest_period *count,
                        struct digest_period *previous);

/* t as "YYYY-MM-DDTHH:MM:SS+HH:MM" in zone (buf: 32 bytes). */
void digest_format_local(const char *zone, int64_t t, char *buf, size_t len);

/* ---- the digest itself ---- */

struct digest_input {
    long long subscription_id;
    const char *subscriber, *schedule, *zone;
    struct digest_period period;
    /* reviews are counted over count and compared with previous
     * (digest_count_window()); by_month says they are whole months */
    struct digest_period count, previous;
    int by_month;
    int64_t min_cell;       /* privacy.min_cell: smaller counts are not shown */
    const char *public_url; /* the dashboard's base, no trailing slash */
    /* what the database counted (digest_clock.c): {"notices": [{id,
     * revision, status, severity, rule, headline, issued_at}], "totals":
     * {reviews, jurisdictions, prev_reviews, prev_jurisdictions}, "themes":
     * [{theme, reviews, jurisdictions, prev_reviews, prev_jurisdictions}]} */
    const json_t *counts;
};

/* The data of the digest (schemas/digest.v1.json, "data"): counts below
 * min_cell replaced by "<min_cell", changes only between two shown counts,
 * rankings ordered by count (a suppressed count as 0) then theme, links to
 * the dashboard, and "counted": the bounds of the counts. A new reference. */
json_t *digest_build(const struct digest_input *in);
/* 1 when the digest says nothing new: no notice and no review in the
 * period. */
int digest_nothing_new(const json_t *data);
/* "sd-<subscription>-<YYYYMMDDTHHMMSSZ of the period's start>": the same for
 * a period whatever computes it (the CloudEvent id, the Message-ID's left
 * part). buf: 64 bytes. */
void digest_event_id(long long subscription_id, int64_t start, char *buf, size_t len);
/* The CloudEvent (org.npcs.safety-digest.v1) of data. A new reference. */
json_t *digest_cloudevent(const json_t *data);
/* The message for people: a subject, a text and an HTML body (bars made of
 * tables, no images, no scripts, every value escaped). The caller frees. */
void digest_render(const json_t *data, char **subject, char **text, char **html);
/* {"subject", "text", "html", "event"}: what a digest delivery sends, stored
 * with the digest. A new reference. */
json_t *digest_message(const json_t *data);

#define DIGEST_EVENT_TYPE   "org.npcs.safety-digest.v1"
#define DIGEST_EVENT_SOURCE "/sn-broker/digests"

#endif
