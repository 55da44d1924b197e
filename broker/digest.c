#include "digest.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SCAN_DAYS (8 * 366)

/* ---- the zone ----
 *
 * The C library reads zone rules only for the zone in TZ (localtime_r,
 * mktime). The broker is single-threaded on its loop and never reads local
 * time elsewhere (logs and APIs are UTC): so a computation sets TZ, does its
 * conversions and puts TZ back as it was before returning. librdkafka's
 * threads do not read local time. Reading TZif files ourselves would avoid
 * this at the cost of a zone-rules parser to maintain. */

struct zone_scope {
    char *saved;
};

static void zone_enter(const char *zone, struct zone_scope *z)
{
    const char *old = getenv("TZ");
    z->saved = old ? xstrdup(old) : NULL;
    setenv("TZ", zone, 1);
    tzset();
}

static void zone_leave(struct zone_scope *z)
{
    if (z->saved)
        setenv("TZ", z->saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(z->saved);
    z->saved = NULL;
}

static int zone_exists(const char *zone)
{
    if (!zone[0] || zone[0] == '/' || strstr(zone, "..") || strlen(zone) >= DIGEST_ZONE_MAX)
        return 0;
    for (const char *p = zone; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p)) return 0;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", zone);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4];
    int ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return ok;
}

/* ---- parsing ---- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const day_full_names[] = {"sunday",   "monday", "tuesday", "wednesday",
                                             "thursday", "friday", "saturday"};

/* A number or (names != NULL) a name whose index + base is its value. */
static int field_value(const char *s, size_t n, const char *const *names, int base, int *out)
{
    if (n == 0 || n > 9) return -1;
    if (isdigit((unsigned char)s[0])) {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)s[i])) return -1;
            v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 0;
    }
    for (int i = 0; names && names[i] && i < 12; i++)
        if (n == 3 && strncasecmp(s, names[i], 3) == 0) {
            *out = i + base;
            return 0;
        }
    return -1;
}

/* One cron field: a list of *, N, N-M, each with an optional /STEP. Sets
 * bits lo..hi of *bits; *restricted when it is not a bare "*". */
static int parse_field(const char *s, size_t n, int lo, int hi, const char *const *names, int base,
                       uint64_t *bits, int *restricted, char *err, size_t errlen, const char *what)
{
    *bits = 0;
    *restricted = !(n >= 1 && s[0] == '*' && (n == 1 || s[1] == '/'));
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        const char *item = s + i;
        size_t len = j - i;
        size_t slash = 0;
        while (slash < len && item[slash] != '/')
            slash++;
        int from, to, step = 1;
        if (slash < len && (field_value(item + slash + 1, len - slash - 1, NULL, 0, &step) != 0 ||
                            step < 1 || step > hi)) {
            sn_errf(err, errlen, "%s: \"%.*s\" has a bad step", what, (int)len, item);
            return -1;
        }
        size_t dash = 0;
        while (dash < slash && item[dash] != '-')
            dash++;
        if (slash == 1 && item[0] == '*') {
            from = lo;
            to = hi;
        } else if (field_value(item, dash, names, base, &from) != 0 ||
                   (dash < slash &&
                    field_value(item + dash + 1, slash - dash - 1, names, base, &to) != 0)) {
            sn_errf(err, errlen, "%s: \"%.*s\" is not *, a number, a range or a list", what,
                    (int)len, item);
            return -1;
        } else {
            if (dash == slash) to = slash < len ? hi : from;
        }
        if (from < lo || to > hi || from > to) {
            sn_errf(err, errlen, "%s: \"%.*s\" is outside %d-%d", what, (int)len, item, lo, hi);
            return -1;
        }
        for (int v = from; v <= to; v += step)
            *bits |= (uint64_t)1 << v;
        i = j + 1;
    }
    return 0;
}

static int parse_time_of_day(const char *s, struct digest_schedule *out)
{
    if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        s[2] != ':' || !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59) return -1;
    out->hours = (uint32_t)1 << h;
    out->minutes = (uint64_t)1 << m;
    return 0;
}

/* Splits text into at most max words (a quoted word keeps its spaces).
 * Returns the count, or -1. */
static int split_words(char *text, char **words, int max)
{
    int n = 0;
    char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p) break;
        if (n == max) return -1;
        if (*p == '"') {
            char *end = strchr(p + 1, '"');
            if (!end) return -1;
            words[n++] = p;
            p = end + 1;
            if (*p && *p != ' ' && *p != '\t') return -1;
            if (*p) *p++ = '\0';
            continue;
        }
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

static const char grammar[] = "daily HH:MM ZONE, weekly DAY HH:MM ZONE or cron \"M H DOM MON DOW\" "
                              "ZONE (ZONE: an IANA time zone such as America/Chicago)";

enum sn_err digest_schedule_parse(const char *text, struct digest_schedule *out, char *err,
                                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *copy = xstrdup(text ? text : "");
    char *w[8];
    int n = split_words(copy, w, 8);
    enum sn_err rc = SN_ERR_INVAL;
    const char *zone = NULL;
    if (n >= 3 && strcasecmp(w[0], "daily") == 0) {
        if (n != 3 || parse_time_of_day(w[1], out) != 0) goto bad;
        out->days = 0xFFFFFFFEu;
        out->months = 0x1FFE;
        out->weekdays = 0x7F;
        zone = w[2];
    } else if (n >= 4 && strcasecmp(w[0], "weekly") == 0) {
        int day = -1;
        for (int i = 0; i < 7; i++)
            if (strcasecmp(w[1], day_names[i]) == 0 || strcasecmp(w[1], day_full_names[i]) == 0)
                day = i;
        if (n != 4 || day < 0 || parse_time_of_day(w[2], out) != 0) goto bad;
        out->days = 0xFFFFFFFEu;
        out->months = 0x1FFE;
        out->weekdays = (uint8_t)(1u << day);
        out->weekdays_restricted = 1;
        zone = w[3];
    } else if (n >= 2 && strcasecmp(w[0], "cron") == 0) {
        if (n != 3 || w[1][0] != '"') goto bad;
        char *fields = w[1] + 1;
        fields[strlen(fields) - 1] = '\0';
        char *f[6];
        if (split_words(fields, f, 6) != 5) {
            sn_errf(err, errlen,
                    "a cron expression has five fields: minute hour day-of-month "
                    "month day-of-week");
            goto out;
        }
        uint64_t bits;
        int restricted;
        if (parse_field(f[0], strlen(f[0]), 0, 59, NULL, 0, &bits, &restricted, err, errlen,
                        "minute") != 0)
            goto out;
        out->minutes = bits;
        if (parse_field(f[1], strlen(f[1]), 0, 23, NULL, 0, &bits, &restricted, err, errlen,
                        "hour") != 0)
            goto out;
        out->hours = (uint32_t)bits;
        if (parse_field(f[2], strlen(f[2]), 1, 31, NULL, 0, &bits, &out->days_restricted, err,
                        errlen, "day of month") != 0)
            goto out;
        out->days = (uint32_t)bits;
        if (parse_field(f[3], strlen(f[3]), 1, 12, month_names, 1, &bits, &restricted, err, errlen,
                        "month") != 0)
            goto out;
        out->months = (uint16_t)bits;
        if (parse_field(f[4], strlen(f[4]), 0, 7, day_names, 0, &bits, &out->weekdays_restricted,
                        err, errlen, "day of week") != 0)
            goto out;
        if (bits & (1u << 7)) bits |= 1; /* 7 is Sunday too */
        out->weekdays = (uint8_t)(bits & 0x7F);
        zone = w[2];
    } else {
        goto bad;
    }
    if (!zone_exists(zone)) {
        sn_errf(err, errlen,
                "\"%s\" is not a time zone of the IANA database (e.g. "
                "America/Chicago, Europe/Berlin, UTC)",
                zone);
        goto out;
    }
    snprintf(out->zone, sizeof(out->zone), "%s", zone);
    if (digest_next(out, (int64_t)time(NULL)) < 0) {
        sn_errf(err, errlen, "the schedule never fires (e.g. 31 February)");
        goto out;
    }
    rc = SN_OK;
    goto out;
bad:
    sn_errf(err, errlen, "is not a schedule: %s", grammar);
out:
    free(copy);
    return rc;
}

/* ---- fire times ---- */

/* A local calendar day. */
struct day {
    int year, month, mday; /* month 1-12 */
    int weekday;           /* 0 Sunday */
};

/* The day `delta` days after d (normalized through timegm, which knows
 * nothing of zones). */
static struct day day_add(struct day d, int delta)
{
    struct tm tm = {
        .tm_year = d.year - 1900, .tm_mon = d.month - 1, .tm_mday = d.mday + delta, .tm_hour = 12};
    time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
    return (struct day){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_wday};
}

static struct day day_of(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return (struct day){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_wday};
}

static int day_matches(const struct digest_schedule *s, struct day d)
{
    if (!(s->months & (1u << d.month))) return 0;
    int dom = (s->days >> d.mday) & 1, dow = (s->weekdays >> d.weekday) & 1;
    if (s->days_restricted && s->weekdays_restricted) return dom || dow;
    return dom && dow;
}

static int same_wall(const struct tm *tm, struct day d, int hour, int minute)
{
    return tm->tm_year == d.year - 1900 && tm->tm_mon == d.month - 1 && tm->tm_mday == d.mday &&
           tm->tm_hour == hour && tm->tm_min == minute;
}

/* The instant of a local wall time in the current TZ: the first occurrence
 * when it occurs twice; in a gap, the later reading (the wall time in the
 * offset before the change, i.e. as far past the gap as it was into it). */
static int64_t local_instant(struct day d, int hour, int minute)
{
    int64_t first = INT64_MAX, later = INT64_MIN;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = {.tm_year = d.year - 1900,
                        .tm_mon = d.month - 1,
                        .tm_mday = d.mday,
                        .tm_hour = hour,
                        .tm_min = minute,
                        .tm_isdst = dst};
        time_t t = mktime(&tm);
        struct tm back;
        if (!localtime_r(&t, &back)) continue;
        if (same_wall(&back, d, hour, minute) && (int64_t)t < first) first = (int64_t)t;
        if ((int64_t)t > later) later = (int64_t)t;
    }
    return first != INT64_MAX ? first : later;
}

/* The UTC offset in force all day on d, or 0 with *uniform = 0 when the
 * offset changes that day (each time is then converted on its own). */
static long day_offset(struct day d, int *uniform)
{
    int64_t a = local_instant(d, 0, 0), b = local_instant(d, 23, 59);
    time_t ta = (time_t)a, tb = (time_t)b;
    struct tm ma, mb;
    localtime_r(&ta, &ma);
    localtime_r(&tb, &mb);
    *uniform = ma.tm_gmtoff == mb.tm_gmtoff && same_wall(&ma, d, 0, 0) && same_wall(&mb, d, 23, 59);
    return ma.tm_gmtoff;
}

/* Over the fire times of day d: the smallest > t (forward) or the largest
 * <= t (backward); *found set when there is one. */
static int64_t scan_day(const struct digest_schedule *s, struct day d, int64_t t, int forward,
                        int *found)
{
    int uniform;
    long offset = day_offset(d, &uniform);
    struct tm midnight = {.tm_year = d.year - 1900, .tm_mon = d.month - 1, .tm_mday = d.mday};
    int64_t base = (int64_t)timegm(&midnight) - offset;
    int64_t best = forward ? INT64_MAX : INT64_MIN;
    *found = 0;
    for (int h = 0; h < 24; h++) {
        if (!(s->hours & (1u << h))) continue;
        for (int m = 0; m < 60; m++) {
            if (!(s->minutes & ((uint64_t)1 << m))) continue;
            int64_t at = uniform ? base + h * 3600 + m * 60 : local_instant(d, h, m);
            if (forward ? (at > t && at < best) : (at <= t && at > best)) {
                best = at;
                *found = 1;
            }
        }
    }
    return best;
}

static int64_t scan(const struct digest_schedule *s, int64_t t, int forward)
{
    struct zone_scope z;
    zone_enter(s->zone, &z);
    /* start a day early (late): a gap at midnight may move a time of the
     * day before into the day of t */
    struct day d = day_add(day_of(t), forward ? -1 : 1);
    int64_t result = -1;
    for (int i = 0; i < SCAN_DAYS; i++, d = day_add(d, forward ? 1 : -1)) {
        if (!day_matches(s, d)) continue;
        int found;
        int64_t at = scan_day(s, d, t, forward, &found);
        if (found) {
            result = at;
            break;
        }
    }
    zone_leave(&z);
    return result;
}

int64_t digest_next(const struct digest_schedule *s, int64_t t)
{
    return scan(s, t, 1);
}

int64_t digest_prev(const struct digest_schedule *s, int64_t t)
{
    return scan(s, t, 0);
}

int digest_period_containing(const struct digest_schedule *s, int64_t t, struct digest_period *p)
{
    p->start = digest_prev(s, t);
    p->end = digest_next(s, t);
    return p->start < 0 || p->end < 0 ? -1 : 0;
}

size_t digest_due(const struct digest_schedule *s, int64_t since, int64_t now,
                  struct digest_period *out, size_t max)
{
    size_t n = 0;
    for (int64_t end = digest_next(s, since); end >= 0 && end <= now && n < max;
         end = digest_next(s, end)) {
        int64_t start = digest_prev(s, end - 1);
        if (start < 0) break;
        out[n++] = (struct digest_period){start, end};
    }
    return n;
}

void digest_format_local(const char *zone, int64_t t, char *buf, size_t len)
{
    struct zone_scope z;
    zone_enter(zone, &z);
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    zone_leave(&z);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 3600,
             off % 3600 / 60);
}

/* A jurisdiction code, as tokens have them: XX-YYY[-ZZZ[-WWW]]. */
static int is_jurisdiction(const char *s)
{
    if (!isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1])) return 0;
    s += 2;
    int parts = 0;
    while (*s == '-') {
        size_t n = strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        if (n < 1 || n > 12) return 0;
        s += 1 + n;
        parts++;
    }
    return *s == '\0' && parts >= 1 && parts <= 3;
}

/* The first instant (UTC) of the month `months` after the one holding t. */
static int64_t month_start(int64_t t, int months)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    struct tm first = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon + months, .tm_mday = 1};
    return (int64_t)timegm(&first);
}

int digest_count_window(const char *subscriber, struct digest_period p, struct digest_period *count,
                        struct digest_period *previous)
{
    if (!is_jurisdiction(subscriber)) {
        *count = p; /* *previous stays the schedule's previous period */
        return 0;
    }
    count->start = month_start(p.start, 0);
    count->end = month_start(p.end - 1, 1);
    int months = 0;
    while (month_start(count->start, months) < count->end)
        months++;
    previous->start = month_start(count->start, -months);
    previous->end = count->start;
    return 1;
}

static void format_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the digest's data ---- */

void digest_event_id(long long subscription_id, int64_t start, char *buf, size_t len)
{
    time_t tt = (time_t)start;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, len, "sd-%lld-%s", subscription_id, when);
}

static json_int_t count_of(const json_t *obj, const char *name)
{
    return json_integer_value(json_object_get(obj, name));
}

/* A count as shown: the number, or "<min_cell" below it. */
static json_t *cell(json_int_t count, int64_t min_cell)
{
    if (count < min_cell) return json_sprintf("<%lld", (long long)min_cell);
    return json_integer(count);
}

/* The change between two counts when both are shown, else null. */
static json_t *change(json_int_t now, json_int_t before, int64_t min_cell)
{
    if (now < min_cell || before < min_cell) return json_null();
    return json_integer(now - before);
}

struct ranked {
    const char *theme;
    json_int_t count, previous;
};

static int ranked_cmp(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->theme, y->theme);
}

/* The top DIGEST_TOP themes of the period by member (reviews or
 * jurisdictions): a suppressed count sorts as 0, so that the order does not
 * tell a count of 1 from one of 2. */
static json_t *ranking(const json_t *themes, const char *member, const char *previous_member,
                       int64_t min_cell)
{
    size_t n = json_array_size(themes), k = 0;
    struct ranked *rows = xcalloc(n, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(themes, i);
        if (count_of(t, member) <= 0) continue;
        rows[k].theme = json_string_value(json_object_get(t, "theme"));
        if (!rows[k].theme) continue;
        rows[k].count = count_of(t, member);
        rows[k].previous = count_of(t, previous_member);
        k++;
    }
    struct ranked *sorted = xcalloc(k, sizeof(*sorted));
    for (size_t i = 0; i < k; i++) {
        sorted[i] = rows[i];
        if (sorted[i].count < min_cell) sorted[i].count = 0;
    }
    qsort(sorted, k, sizeof(*sorted), ranked_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < k && i < DIGEST_TOP; i++) {
        json_int_t count = 0;
        for (size_t j = 0; j < k; j++)
            if (strcmp(rows[j].theme, sorted[i].theme) == 0) count = rows[j].count;
        json_array_append_new(out, json_pack("{s:s,s:o,s:o,s:o}", "theme", sorted[i].theme, "count",
                                             cell(count, min_cell), "previous",
                                             cell(sorted[i].previous, min_cell), "change",
                                             change(count, sorted[i].previous, min_cell)));
    }
    free(rows);
    free(sorted);
    return out;
}

json_t *digest_build(const struct digest_input *in)
{
    char start[32], end[32], prev_start[32], count_start[32], count_end[32], local_start[40],
        local_end[40], id[64];
    format_utc(in->period.start, start, sizeof(start));
    format_utc(in->period.end, end, sizeof(end));
    format_utc(in->previous.start, prev_start, sizeof(prev_start));
    format_utc(in->count.start, count_start, sizeof(count_start));
    format_utc(in->count.end, count_end, sizeof(count_end));
    digest_format_local(in->zone, in->period.start, local_start, sizeof(local_start));
    digest_format_local(in->zone, in->period.end, local_end, sizeof(local_end));
    digest_event_id(in->subscription_id, in->period.start, id, sizeof(id));

    json_t *groups = json_pack("{s:[],s:[],s:[]}", "new", "escalated", "resolved");
    const json_t *notices = json_object_get(in->counts, "notices");
    size_t i;
    const json_t *n;
    json_array_foreach(notices, i, n)
    {
        const char *status = json_string_value(json_object_get(n, "status"));
        const char *group = !status                            ? NULL
                            : strcmp(status, "issued") == 0    ? "new"
                            : strcmp(status, "escalated") == 0 ? "escalated"
                            : strcmp(status, "resolved") == 0  ? "resolved"
                                                               : NULL;
        const char *nid = json_string_value(json_object_get(n, "id"));
        if (!group || !nid) continue;
        json_t *item = json_deep_copy(n);
        json_object_set_new(item, "link",
                            json_sprintf("%s/dashboard/notices/%s", in->public_url, nid));
        json_array_append_new(json_object_get(groups, group), item);
    }
    const json_t *totals = json_object_get(in->counts, "totals");
    const json_t *themes = json_object_get(in->counts, "themes");
    int64_t mc = in->min_cell;
    json_t *data = json_pack(
        "{s:s,s:I,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s},s:o,s:{s:o,s:o,s:o,s:o,s:o,s:o},"
        "s:{s:o,s:o},s:I,s:s}",
        "id", id, "subscription_id", (json_int_t)in->subscription_id, "subscriber", in->subscriber,
        "schedule", in->schedule, "period", "start", start, "end", end, "zone", in->zone,
        "local_start", local_start, "local_end", local_end, "previous_period", "start", prev_start,
        "end", count_start, "notices", groups, "totals", "reviews",
        cell(count_of(totals, "reviews"), mc), "jurisdictions",
        cell(count_of(totals, "jurisdictions"), mc), "previous_reviews",
        cell(count_of(totals, "prev_reviews"), mc), "previous_jurisdictions",
        cell(count_of(totals, "prev_jurisdictions"), mc), "reviews_change",
        change(count_of(totals, "reviews"), count_of(totals, "prev_reviews"), mc),
        "jurisdictions_change",
        change(count_of(totals, "jurisdictions"), count_of(totals, "prev_jurisdictions"), mc),
        "themes", "by_reviews", ranking(themes, "reviews", "prev_reviews", mc), "by_jurisdictions",
        ranking(themes, "jurisdictions", "prev_jurisdictions", mc), "min_cell", (json_int_t)mc,
        "dashboard", in->public_url);
    if (!data) sn_oom(0);
    json_object_set_new(data, "counted",
                        json_pack("{s:s,s:s,s:s}", "start", count_start, "end", count_end,
                                  "granularity", in->by_month ? "month" : "period"));
    int empty = json_array_size(json_object_get(groups, "new")) == 0 &&
                json_array_size(json_object_get(groups, "escalated")) == 0 &&
                json_array_size(json_object_get(groups, "resolved")) == 0 &&
                count_of(totals, "reviews") == 0;
    json_object_set_new(data, "nothing_new", json_boolean(empty));
    return data;
}

int digest_nothing_new(const json_t *data)
{
    return json_is_true(json_object_get(data, "nothing_new"));
}

json_t *digest_cloudevent(const json_t *data)
{
    const char *id = json_string_value(json_object_get(data, "id"));
    const char *end = json_string_value(json_object_get(json_object_get(data, "period"), "end"));
    json_t *ev =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:O}", "specversion", "1.0", "id", id ? id : "",
                  "source", DIGEST_EVENT_SOURCE, "type", DIGEST_EVENT_TYPE, "subject",
                  json_sprintf("subscription/%" JSON_INTEGER_FORMAT,
                               json_integer_value(json_object_get(data, "subscription_id"))),
                  "time", end ? end : "", "datacontenttype", "application/json", "data", data);
    if (!ev) sn_oom(0);
    return ev;
}

/* ---- rendering ---- */

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (!b->data || b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, s, (size_t)n);
    free(s);
}

/* Text: one line, control characters as spaces. */
static void add_text(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        char c = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
        buf_add(b, &c, 1);
    }
}

/* HTML: one line, the five markup characters as references. */
static void add_html(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_add(b, "&amp;", 5); break;
        case '<': buf_add(b, "&lt;", 4); break;
        case '>': buf_add(b, "&gt;", 4); break;
        case '"': buf_add(b, "&quot;", 6); break;
        case '\'': buf_add(b, "&#39;", 5); break;
        default: {
            char c = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
            buf_add(b, &c, 1);
        }
        }
    }
}

static char *buf_take(struct buf *b)
{
    char *s = b->data ? b->data : xstrdup("");
    b->data = NULL;
    return s;
}

/* A cell as text: the number or "<3". buf: 32 bytes. */
static const char *cell_text(const json_t *c, char *buf, size_t len)
{
    if (json_is_integer(c))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(c));
    else
        snprintf(buf, len, "%s", json_string_value(c) ? json_string_value(c) : "-");
    return buf;
}

static const char *change_text(const json_t *c, char *buf, size_t len)
{
    if (!json_is_integer(c))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%+" JSON_INTEGER_FORMAT, json_integer_value(c));
    return buf;
}

static const char *const group_titles[][2] = {
    {"new", "New notices"}, {"escalated", "Escalated"}, {"resolved", "Resolved"}};
static const char *const ranking_titles[][3] = {
    {"by_reviews", "Top improvement-opportunity themes by reviews", "reviews"},
    {"by_jurisdictions", "Top improvement-opportunity themes by jurisdictions", "jurisdictions"}};

static const char *str(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s ? s : "";
}

/* What the counts cover: "in the period", or the whole months ("in 2026-11",
 * "in 2026-10 to 2026-11"), UTC. buf: 64 bytes. */
static const char *counted_label(const json_t *data, char *buf, size_t len)
{
    const json_t *counted = json_object_get(data, "counted");
    int y1, m1, y2, m2;
    if (strcmp(str(counted, "granularity"), "month") != 0 ||
        sscanf(str(counted, "start"), "%d-%d", &y1, &m1) != 2 ||
        sscanf(str(counted, "end"), "%d-%d", &y2, &m2) != 2) {
        snprintf(buf, len, "in the period");
        return buf;
    }
    if (--m2 == 0) m2 = 12, y2--; /* the end is the first instant after the last month */
    if (y1 == y2 && m1 == m2)
        snprintf(buf, len, "in %04d-%02d (UTC)", y1, m1);
    else
        snprintf(buf, len, "in %04d-%02d to %04d-%02d (UTC)", y1, m1, y2, m2);
    return buf;
}

static void period_line(struct buf *b, const json_t *data, int html)
{
    const json_t *p = json_object_get(data, "period");
    void (*add)(struct buf *, const char *) = html ? add_html : add_text;
    add(b, str(p, "local_start"));
    buf_add(b, " to ", 4);
    add(b, str(p, "local_end"));
    buf_add(b, " (", 2);
    add(b, str(p, "zone"));
    buf_add(b, ")", 1);
}

static char *render_text(const json_t *data)
{
    struct buf b = {0};
    char c1[32], c2[32], c3[32];
    buf_addf(&b, "Safety Notice digest for ");
    add_text(&b, str(data, "subscriber"));
    buf_addf(&b, "\nPeriod: ");
    period_line(&b, data, 0);
    buf_addf(&b, "\n\n");
    if (digest_nothing_new(data)) {
        buf_addf(&b, "Nothing new in this period: no notice was issued, escalated or resolved, "
                     "and no review was finalized.\n");
        return buf_take(&b);
    }
    const json_t *notices = json_object_get(data, "notices");
    for (size_t g = 0; g < SN_ARRAY_LEN(group_titles); g++) {
        const json_t *list = json_object_get(notices, group_titles[g][0]);
        buf_addf(&b, "%s (%zu)\n", group_titles[g][1], json_array_size(list));
        size_t i;
        const json_t *n;
        json_array_foreach(list, i, n)
        {
            buf_addf(&b, "  - [");
            add_text(&b, str(n, "severity"));
            buf_addf(&b, "] ");
            add_text(&b, str(n, "headline"));
            buf_addf(&b, "\n    ");
            add_text(&b, str(n, "link"));
            buf_addf(&b, "\n");
        }
        buf_addf(&b, "\n");
    }
    const json_t *totals = json_object_get(data, "totals");
    char label[64];
    counted_label(data, label, sizeof(label));
    buf_addf(&b, "Reviews finalized %s: %s (before: %s, change %s)\n", label,
             cell_text(json_object_get(totals, "reviews"), c1, sizeof(c1)),
             cell_text(json_object_get(totals, "previous_reviews"), c2, sizeof(c2)),
             change_text(json_object_get(totals, "reviews_change"), c3, sizeof(c3)));
    buf_addf(&b, "Jurisdictions: %s (before: %s, change %s)\n\n",
             cell_text(json_object_get(totals, "jurisdictions"), c1, sizeof(c1)),
             cell_text(json_object_get(totals, "previous_jurisdictions"), c2, sizeof(c2)),
             change_text(json_object_get(totals, "jurisdictions_change"), c3, sizeof(c3)));
    const json_t *themes = json_object_get(data, "themes");
    for (size_t r = 0; r < SN_ARRAY_LEN(ranking_titles); r++) {
        const json_t *list = json_object_get(themes, ranking_titles[r][0]);
        buf_addf(&b, "%s, %s\n", ranking_titles[r][1], label);
        if (json_array_size(list) == 0) buf_addf(&b, "  (none in this period)\n");
        size_t i;
        const json_t *t;
        json_array_foreach(list, i, t)
        {
            buf_addf(&b, "  %zu. ", i + 1);
            add_text(&b, str(t, "theme"));
            buf_addf(&b, ": %s %s (previous %s, change %s)\n",
                     cell_text(json_object_get(t, "count"), c1, sizeof(c1)), ranking_titles[r][2],
                     cell_text(json_object_get(t, "previous"), c2, sizeof(c2)),
                     change_text(json_object_get(t, "change"), c3, sizeof(c3)));
        }
        buf_addf(&b, "\n");
    }
    buf_addf(&b, "Counts below %" JSON_INTEGER_FORMAT " are not shown (privacy).\n",
             json_integer_value(json_object_get(data, "min_cell")));
    return buf_take(&b);
}

#define BAR_COLOUR "#1f5fa8"

/* A bar chart row: the theme, a bar as a two-cell table (widths in
 * percent, which mail clients render without CSS support), the count and
 * the change. A suppressed count gets no bar. */
static void html_bar_row(struct buf *b, const json_t *t, json_int_t max)
{
    char c1[32], c2[32], c3[32];
    const json_t *count = json_object_get(t, "count");
    int width =
        json_is_integer(count) && max > 0 ? (int)(json_integer_value(count) * 100 / max) : 0;
    if (json_is_integer(count) && width < 1) width = 1;
    buf_addf(b, "<tr><td style=\"padding:2px 8px 2px 0\">");
    add_html(b, str(t, "theme"));
    buf_addf(b, "</td><td style=\"width:50%%;padding:2px 0\">");
    if (width > 0)
        buf_addf(b,
                 "<table role=\"presentation\" class=\"bar\" width=\"100%%\" cellspacing=\"0\" "
                 "cellpadding=\"0\"><tr><td width=\"%d%%\" style=\"background:" BAR_COLOUR
                 ";height:12px;font-size:0;line-height:0\">&nbsp;</td>%s</tr></table>",
                 width, width < 100 ? "<td style=\"font-size:0;line-height:0\">&nbsp;</td>" : "");
    buf_addf(b,
             "</td><td style=\"padding:2px 8px;text-align:right\">%s</td>"
             "<td style=\"padding:2px 8px;text-align:right;color:#555\">%s</td>"
             "<td style=\"padding:2px 8px;text-align:right\">%s</td></tr>\n",
             cell_text(count, c1, sizeof(c1)),
             cell_text(json_object_get(t, "previous"), c2, sizeof(c2)),
             change_text(json_object_get(t, "change"), c3, sizeof(c3)));
}

static char *render_html(const json_t *data, const char *subject)
{
    struct buf b = {0};
    char c1[32], c2[32], c3[32];
    buf_addf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    add_html(&b, subject);
    buf_addf(&b, "</title></head>\n<body style=\"font-family:Arial,Helvetica,sans-serif;"
                 "color:#1a1a1a;background:#ffffff\">\n<h1 style=\"font-size:20px\">"
                 "Safety Notice digest for ");
    add_html(&b, str(data, "subscriber"));
    buf_addf(&b, "</h1>\n<p>");
    period_line(&b, data, 1);
    buf_addf(&b, "</p>\n");
    if (digest_nothing_new(data)) {
        buf_addf(&b, "<p>Nothing new in this period: no notice was issued, escalated or "
                     "resolved, and no review was finalized.</p>\n</body></html>\n");
        return buf_take(&b);
    }
    const json_t *notices = json_object_get(data, "notices");
    for (size_t g = 0; g < SN_ARRAY_LEN(group_titles); g++) {
        const json_t *list = json_object_get(notices, group_titles[g][0]);
        buf_addf(&b, "<h2 style=\"font-size:16px\">%s (%zu)</h2>\n", group_titles[g][1],
                 json_array_size(list));
        if (json_array_size(list) == 0) continue;
        buf_addf(&b, "<ul>\n");
        size_t i;
        const json_t *n;
        json_array_foreach(list, i, n)
        {
            buf_addf(&b, "<li><strong>");
            add_html(&b, str(n, "severity"));
            buf_addf(&b, "</strong> <a href=\"");
            add_html(&b, str(n, "link"));
            buf_addf(&b, "\">");
            add_html(&b, str(n, "headline"));
            buf_addf(&b, "</a></li>\n");
        }
        buf_addf(&b, "</ul>\n");
    }
    const json_t *totals = json_object_get(data, "totals");
    char label[64];
    counted_label(data, label, sizeof(label));
    buf_addf(&b, "<p>Reviews finalized %s: <strong>%s</strong> (before: %s, change %s). ", label,
             cell_text(json_object_get(totals, "reviews"), c1, sizeof(c1)),
             cell_text(json_object_get(totals, "previous_reviews"), c2, sizeof(c2)),
             change_text(json_object_get(totals, "reviews_change"), c3, sizeof(c3)));
    buf_addf(&b, "Jurisdictions: <strong>%s</strong> (before: %s, change %s).</p>\n",
             cell_text(json_object_get(totals, "jurisdictions"), c1, sizeof(c1)),
             cell_text(json_object_get(totals, "previous_jurisdictions"), c2, sizeof(c2)),
             change_text(json_object_get(totals, "jurisdictions_change"), c3, sizeof(c3)));
    const json_t *themes = json_object_get(data, "themes");
    for (size_t r = 0; r < SN_ARRAY_LEN(ranking_titles); r++) {
        const json_t *list = json_object_get(themes, ranking_titles[r][0]);
        buf_addf(&b, "<h2 style=\"font-size:16px\">%s, %s</h2>\n", ranking_titles[r][1], label);
        if (json_array_size(list) == 0) {
            buf_addf(&b, "<p>None in this period.</p>\n");
            continue;
        }
        json_int_t max = 0;
        size_t i;
        const json_t *t;
        json_array_foreach(list, i, t)
        {
            const json_t *c = json_object_get(t, "count");
            if (json_is_integer(c) && json_integer_value(c) > max) max = json_integer_value(c);
        }
        buf_addf(&b,
                 "<table class=\"chart\" cellspacing=\"0\" cellpadding=\"0\" "
                 "style=\"border-collapse:collapse;width:100%%;max-width:640px\">\n"
                 "<caption style=\"text-align:left\">%s in the period</caption>\n"
                 "<tr><th scope=\"col\" style=\"text-align:left\">Theme</th>"
                 "<th scope=\"col\"></th><th scope=\"col\">This period</th>"
                 "<th scope=\"col\">Previous</th><th scope=\"col\">Change</th></tr>\n",
                 ranking_titles[r][2]);
        json_array_foreach(list, i, t) html_bar_row(&b, t, max);
        buf_addf(&b, "</table>\n");
    }
    buf_addf(&b,
             "<p style=\"color:#555;font-size:12px\">Counts below %" JSON_INTEGER_FORMAT
             " are not shown (privacy).</p>\n</body></html>\n",
             json_integer_value(json_object_get(data, "min_cell")));
    return buf_take(&b);
}

void digest_render(const json_t *data, char **subject, char **text, char **html)
{
    struct buf b = {0};
    const json_t *notices = json_object_get(data, "notices");
    const json_t *p = json_object_get(data, "period");
    buf_addf(&b, "Safety Notice digest %.10s", str(p, "local_start"));
    if (digest_nothing_new(data))
        buf_addf(&b, ": nothing new");
    else
        buf_addf(&b, ": %zu new, %zu escalated, %zu resolved",
                 json_array_size(json_object_get(notices, "new")),
                 json_array_size(json_object_get(notices, "escalated")),
                 json_array_size(json_object_get(notices, "resolved")));
    *subject = buf_take(&b);
    *text = render_text(data);
    *html = render_html(data, *subject);
}

json_t *digest_message(const json_t *data)
{
    char *subject, *text, *html;
    digest_render(data, &subject, &text, &html);
    json_t *m = json_pack("{s:s,s:s,s:s,s:o}", "subject", subject, "text", text, "html", html,
                          "event", digest_cloudevent(data));
    free(subject);
    free(text);
    free(html);
    if (!m) sn_oom(0);
    return m;
}
