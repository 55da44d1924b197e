#include "engine.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sn.h"
#include "window.h"

/* A fact of a review held in the window of a group: what a later version of
 * the review retracts. */
struct held {
    uint32_t group, slot; /* the group's window and the fact's slot in it */
    int64_t fact_id;
};

/* A review the engine remembers, for as long as its facts can be in a window. */
struct review {
    char *key; /* "jurisdiction/review_id"; NULL when the slot is free */
    int version;
    int64_t time;
    struct held *held;
    size_t held_len, held_cap;
    uint32_t next_free;
};

struct group {
    size_t rule; /* index in the rule set */
    size_t seq;  /* creation order: revisions decided at one time come out in this order */
    char *key;
    json_t *labels;
    struct window *window;
    struct episode ep;
    char notice_id[32];
    int64_t started_at;
    /* the last evaluation */
    int evaluated;
    int level_now;
    size_t reviews_now, jurisdictions_now;
    int64_t due; /* when something next falls due, INT64_MAX for never */
    int touched, changed;
};

/* A revision decided but not yet handed out: the revisions of one step are
 * handed out in (time, rule, group) order. */
struct pending {
    int64_t time, started_at;
    size_t rule, seq, order;
    json_t *revision;
};

struct engine {
    const struct rule_set *rs;
    const struct engine_options *opt;
    char *id_key; /* NULL: ids are a plain hash (tests) */
    engine_revision_fn on_revision;
    void *arg;
    int64_t clock, horizon, next_due;

    struct group **groups;
    size_t groups_len, groups_cap;
    json_t **group_index; /* per rule: group key -> index in groups */

    struct review *reviews;
    size_t reviews_len, reviews_cap, reviews_tracked;
    uint32_t free_review;
    json_t *review_index; /* review key -> slot: the review's id in every window */
    /* label values (jurisdictions, codes) -> ids shared by every window; a
     * bounded set (the vocabulary and the members), never shrunk */
    json_t *label_index;
    char **label_names;
    size_t labels_len, labels_cap;
    /* slots in the order they were created: a review is forgotten, from the
     * front, once its time is past the horizon */
    uint32_t *fifo;
    size_t fifo_head, fifo_len, fifo_cap;

    uint32_t *touched, *changed;
    size_t touched_len, touched_cap, changed_len, changed_cap;

    struct pending *pending;
    size_t pending_len, pending_cap;
    int correcting; /* engine_restore_done(e, 1) in progress */
};

#define NO_SLOT UINT32_MAX

static const char *const BREAKDOWN_NAMES[WINDOW_BREAKDOWNS] = {"cause", "age_band", "partner",
                                                               "priority"};
static const int BREAKDOWN_LABELS[WINDOW_BREAKDOWNS] = {FACT_CAUSE, FACT_AGE_BAND, FACT_PARTNER,
                                                        FACT_PRIORITY};

static int64_t saturated_add(int64_t a, int64_t b)
{
    int64_t sum;
    return __builtin_add_overflow(a, b, &sum) ? (b > 0 ? INT64_MAX : INT64_MIN) : sum;
}

static void *grow(void *items, size_t *cap, size_t size)
{
    *cap = *cap ? *cap * 2 : 16;
    return xrealloc(items, *cap * size);
}

static void push_index(uint32_t **items, size_t *len, size_t *cap, uint32_t value)
{
    if (*len == *cap) *items = grow(*items, cap, sizeof(**items));
    (*items)[(*len)++] = value;
}

/* ms (rounded down to the second, before 1970 too) in UTC as format says. */
static void format_utc(int64_t ms, const char *format, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, format, &tm);
}

void engine_format_month(int64_t ms, char buf[8])
{
    format_utc(ms, "%Y-%m", buf, 8);
}

void engine_format_time(int64_t ms, char buf[32])
{
    format_utc(ms, "%Y-%m-%dT%H:%M:%SZ", buf, 32);
}

int engine_parse_time(const char *text, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(text, "%Y-%m-%d", &tm);
    if (!rest || (rest - text) != 10) return -1;
    int64_t frac_ms = 0, offset_s = 0;
    if (*rest) {
        if (*rest != 'T' && *rest != 't') return -1;
        const char *time_start = rest + 1;
        rest = strptime(time_start, "%H:%M:%S", &tm);
        if (!rest || rest - time_start != 8) return -1;
        if (*rest == '.') {
            int digits = 0;
            for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
                if (digits < 3) frac_ms = frac_ms * 10 + (*rest - '0');
            if (digits == 0) return -1;
            for (; digits < 3; digits++)
                frac_ms *= 10;
        }
        if (*rest == 'Z' || *rest == 'z') {
            rest++;
        } else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
            int h = (rest[1] - '0') * 10 + (rest[2] - '0'),
                m = (rest[4] - '0') * 10 + (rest[5] - '0');
            offset_s = (int64_t)(h * 3600 + m * 60) * (*rest == '-' ? -1 : 1);
            rest += 6;
        } else {
            return -1;
        }
        if (*rest) return -1;
    }
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}

struct engine *engine_new(const struct rule_set *rs, const struct engine_options *opt,
                          engine_revision_fn on_revision, void *arg)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    e->rs = rs;
    e->opt = opt;
    e->on_revision = on_revision;
    e->arg = arg;
    e->clock = INT64_MIN;
    e->next_due = INT64_MAX;
    e->free_review = NO_SLOT;
    e->review_index = json_object();
    e->label_index = json_object();
    size_t n = rule_set_count(rs);
    e->group_index = xcalloc(n, sizeof(json_t *));
    for (size_t i = 0; i < n; i++)
        e->group_index[i] = json_object();
    e->horizon = rule_set_horizon(rs, NULL);
    return e;
}

void engine_set_id_key(struct engine *e, const char *key)
{
    free(e->id_key);
    e->id_key = key ? xstrdup(key) : NULL;
}

void engine_free(struct engine *e)
{
    if (!e) return;
    free(e->id_key);
    for (size_t i = 0; i < e->groups_len; i++) {
        struct group *g = e->groups[i];
        window_free(g->window);
        json_decref(g->labels);
        free(g->key);
        free(g);
    }
    free(e->groups);
    for (size_t i = 0; i < rule_set_count(e->rs); i++)
        json_decref(e->group_index[i]);
    free(e->group_index);
    for (size_t i = 0; i < e->reviews_len; i++) {
        free(e->reviews[i].key);
        free(e->reviews[i].held);
    }
    free(e->reviews);
    json_decref(e->review_index);
    json_decref(e->label_index);
    for (size_t i = 0; i < e->labels_len; i++)
        free(e->label_names[i]);
    free(e->label_names);
    free(e->fifo);
    free(e->touched);
    free(e->changed);
    for (size_t i = 0; i < e->pending_len; i++)
        json_decref(e->pending[i].revision);
    free(e->pending);
    free(e);
}

int64_t engine_horizon(const struct engine *e)
{
    return e->horizon;
}

int64_t engine_clock(const struct engine *e)
{
    return e->clock;
}

/* ---- label ids ---- */

static const char *label_name(uint32_t id, void *arg)
{
    const struct engine *e = arg;
    return e->label_names[id];
}

static uint32_t label_id(struct engine *e, const char *text)
{
    if (!text) return WINDOW_NO_ID;
    json_t *id = json_object_get(e->label_index, text);
    if (id) return (uint32_t)json_integer_value(id);
    if (e->labels_len == e->labels_cap)
        e->label_names = grow(e->label_names, &e->labels_cap, sizeof(*e->label_names));
    e->label_names[e->labels_len] = xstrdup(text);
    json_object_set_new(e->label_index, text, json_integer((json_int_t)e->labels_len));
    return (uint32_t)e->labels_len++;
}

/* ---- groups ---- */

static struct group *group_find(struct engine *e, size_t rule, const char *key)
{
    json_t *index = json_object_get(e->group_index[rule], key);
    return index ? e->groups[json_integer_value(index)] : NULL;
}

/* labels is stolen. */
static struct group *group_create(struct engine *e, size_t rule, const char *key, json_t *labels)
{
    const struct rule *r = rule_set_get(e->rs, rule);
    struct group *g = xcalloc(1, sizeof(*g));
    g->rule = rule;
    g->seq = e->groups_len;
    g->key = xstrdup(key);
    g->labels = labels;
    /* a review's jurisdiction and its incident's cause and age band are the
     * same for all its facts (a new version's replace the old's) */
    g->window = window_new_named(r->window_ms, rule_has_growth(r), label_name, e,
                                 WINDOW_PER_REVIEW_JURISDICTION | WINDOW_PER_REVIEW(WINDOW_CAUSE) |
                                     WINDOW_PER_REVIEW(WINDOW_AGE_BAND));
    if (e->clock != INT64_MIN) window_advance(g->window, e->clock);
    episode_init(&g->ep);
    g->level_now = -1;
    g->due = INT64_MAX;
    if (e->groups_len == e->groups_cap)
        e->groups = grow(e->groups, &e->groups_cap, sizeof(struct group *));
    e->groups[e->groups_len++] = g;
    json_object_set_new(e->group_index[rule], key, json_integer((json_int_t)g->seq));
    return g;
}

static int episode_equal(const struct episode *a, const struct episode *b)
{
    return a->active == b->active && a->level == b->level && a->revision == b->revision &&
           a->last_revision_at == b->last_revision_at && a->below_since == b->below_since &&
           a->reviews == b->reviews && a->jurisdictions == b->jurisdictions;
}

/* When the group next needs an evaluation without a new fact: a fact leaving
 * its window, the end of resolve_after while below every level, or the end of
 * repeat_interval while the counts differ from the last revision's. Mirrors
 * the conditions of episode_step(). */
static int64_t group_due(const struct engine *e, const struct group *g)
{
    const struct rule *r = rule_set_get(e->rs, g->rule);
    int64_t due = window_next_expiry(g->window), at = INT64_MAX;
    if (g->ep.active && g->evaluated) {
        if (g->level_now < 0 && g->ep.below_since >= 0)
            at = saturated_add(g->ep.below_since, r->resolve_after_ms);
        else if (g->level_now >= 0 && g->level_now <= g->ep.level &&
                 (g->level_now != g->ep.level || g->reviews_now != g->ep.reviews ||
                  g->jurisdictions_now != g->ep.jurisdictions))
            at = saturated_add(g->ep.last_revision_at, r->repeat_interval_ms);
    }
    return at < due ? at : due;
}

/* ---- revisions ---- */

/* The id of a new episode's notice: the same for the same rule, group and
 * start (live, restored or replayed), and keyed, because the start is the
 * event time of a review: an unkeyed hash of it could be searched for the
 * exact time within the month the notice shows. */
static void notice_id_new(const struct engine *e, struct group *g, const char *rule_id)
{
    char *text;
    if (asprintf(&text, "%s\n%s\n%" PRId64, rule_id, g->key, g->started_at) < 0) sn_oom(0);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (e->id_key) {
        if (!HMAC(EVP_sha256(), e->id_key, (int)strlen(e->id_key), (const unsigned char *)text,
                  strlen(text), digest, &len))
            sn_oom(0);
    } else {
        SHA256((const unsigned char *)text, strlen(text), digest);
    }
    free(text);
    memcpy(g->notice_id, "sn-", 3);
    for (int i = 0; i < 10; i++)
        snprintf(g->notice_id + 3 + 2 * i, 3, "%02x", digest[i]);
}

struct listing {
    const struct engine *e;
    json_t *out;
    size_t unnamed;
};

static int is_unnamed(const struct engine_options *opt, const char *jurisdiction)
{
    for (size_t i = 0; opt && i < opt->unnamed_count; i++)
        if (strcmp(opt->unnamed[i], jurisdiction) == 0) return 1;
    return 0;
}

static void list_jurisdiction(const char *jurisdiction, size_t reviews, void *arg)
{
    struct listing *l = arg;
    (void)reviews;
    if (is_unnamed(l->e->opt, jurisdiction))
        l->unnamed++;
    else
        json_array_append_new(l->out, json_string(jurisdiction));
}

static void list_cell(const char *value, size_t reviews, void *arg)
{
    struct listing *l = arg;
    size_t min_cell = l->e->opt ? l->e->opt->min_cell : 0;
    json_object_set_new(l->out, value,
                        reviews < min_cell ? json_sprintf("<%zu", min_cell)
                                           : json_integer((json_int_t)reviews));
}

static json_t *revision_new(const struct engine *e, const struct group *g,
                            enum revision_status status, int previous_level, int64_t t)
{
    const struct rule *r = rule_set_get(e->rs, g->rule);
    int level = status == REVISION_RESOLVED ? previous_level : g->ep.level;
    if (level < 0) level = 0;
    const char *severity = rule_severity_name(r->levels[level].severity);
    struct window_counts c = window_current(g->window);

    char from[8], to[8], length[64], issued_at[32];
    engine_format_month(saturated_add(t, -r->window_ms), from);
    engine_format_month(t, to);
    rule_format_duration(r->window_ms, length, sizeof(length));
    engine_format_time(t, issued_at);

    struct listing named = {e, json_array(), 0};
    window_jurisdictions(g->window, list_jurisdiction, &named);
    json_t *breakdown = json_object();
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++) {
        struct listing cells = {e, json_object(), 0};
        window_breakdown(g->window, d, list_cell, &cells);
        json_object_set_new(breakdown, BREAKDOWN_NAMES[d], cells.out);
    }
    char *topic =
        r->topic
            ? rule_render(r->topic, g->labels, c.reviews, c.jurisdictions, r->window_ms, severity)
            : xstrdup(e->opt && e->opt->default_topic ? e->opt->default_topic : "safety-notices");
    char *headline =
        rule_render(r->headline, g->labels, c.reviews, c.jurisdictions, r->window_ms, severity);
    char *summary = rule_render(r->summary ? r->summary : "", g->labels, c.reviews, c.jurisdictions,
                                r->window_ms, severity);
    json_t *rev = json_pack(
        "{s:s,s:i,s:s,s:s,s:s,s:O,s:s,s:s,s:s,s:{s:s,s:s,s:s},s:{s:I,s:I,s:I,s:I},s:o,s:I,s:o,"
        "s:s}",
        "id", g->notice_id, "revision", g->ep.revision, "status", revision_status_name(status),
        "rule", r->id, "severity", severity, "group", g->labels, "topic", topic, "headline",
        headline, "summary", summary, "window", "from", from, "to", to, "length", length, "counts",
        "reviews", (json_int_t)c.reviews, "jurisdictions", (json_int_t)c.jurisdictions,
        "improvement_opportunities", (json_int_t)c.tagged, "family_needs",
        (json_int_t)(c.facts - c.tagged), "jurisdictions", named.out, "unnamed_jurisdictions",
        (json_int_t)named.unnamed, "breakdown", breakdown, "issued_at", issued_at);
    free(topic);
    free(headline);
    free(summary);
    if (!rev) sn_oom(0);
    return rev;
}

static void mark_changed(struct engine *e, struct group *g)
{
    if (g->changed) return;
    g->changed = 1;
    push_index(&e->changed, &e->changed_len, &e->changed_cap, (uint32_t)g->seq);
}

/* Evaluates g at time t: its level now, and the revision that gives, if any. */
static void evaluate(struct engine *e, struct group *g, int64_t t)
{
    const struct rule *r = rule_set_get(e->rs, g->rule);
    struct window_counts c = window_current(g->window);
    double growth = INFINITY;
    if (rule_has_growth(r)) {
        size_t before = window_previous(g->window).reviews;
        growth = (double)c.reviews / (double)(before ? before : 1);
    }
    int level = rules_level_reached(r, c.reviews, c.jurisdictions, growth);
    /* a correction is published at once: no waiting for repeat_interval or
     * resolve_after */
    struct episode_policy policy = {e->correcting ? 0 : r->repeat_interval_ms,
                                    e->correcting ? 0 : r->resolve_after_ms};
    struct episode before = g->ep;
    enum revision_status status =
        episode_step(&g->ep, &policy, level, c.reviews, c.jurisdictions, t);
    g->evaluated = 1;
    g->level_now = level;
    g->reviews_now = c.reviews;
    g->jurisdictions_now = c.jurisdictions;
    if (!episode_equal(&before, &g->ep)) mark_changed(e, g);
    if (status == REVISION_NONE) return;
    if (status == REVISION_ISSUED) {
        g->started_at = t;
        notice_id_new(e, g, r->id);
    }
    if (e->pending_len == e->pending_cap)
        e->pending = grow(e->pending, &e->pending_cap, sizeof(*e->pending));
    e->pending[e->pending_len] =
        (struct pending){t,      g->started_at,  g->rule,
                         g->seq, e->pending_len, revision_new(e, g, status, before.level, t)};
    e->pending_len++;
}

static void set_due(struct engine *e, struct group *g)
{
    g->due = group_due(e, g);
    if (g->due < e->next_due) e->next_due = g->due;
}

/* Evaluates g at everything that falls due up to t, in time order. */
static void group_catch_up(struct engine *e, struct group *g, int64_t t)
{
    for (;;) {
        int64_t due = group_due(e, g);
        if (due > t) break;
        window_advance(g->window, due);
        evaluate(e, g, due);
        /* each evaluation moves the due time on (see group_due); guard anyway */
        if (group_due(e, g) <= due) break;
    }
}

static int cmp_pending(const void *a, const void *b)
{
    const struct pending *x = a, *y = b;
    if (x->time != y->time) return x->time < y->time ? -1 : 1;
    if (x->rule != y->rule) return x->rule < y->rule ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void flush_pending(struct engine *e)
{
    if (e->pending_len > 1) qsort(e->pending, e->pending_len, sizeof(*e->pending), cmp_pending);
    for (size_t i = 0; i < e->pending_len; i++) {
        struct pending *p = &e->pending[i];
        if (e->on_revision)
            e->on_revision(p->revision, e->groups[p->seq]->key, p->started_at, e->arg);
        else
            json_decref(p->revision);
    }
    e->pending_len = 0;
}

/* ---- reviews ---- */

static void review_forget(struct engine *e, uint32_t slot)
{
    struct review *rv = &e->reviews[slot];
    json_object_del(e->review_index, rv->key);
    free(rv->key);
    free(rv->held);
    memset(rv, 0, sizeof(*rv));
    rv->next_free = e->free_review;
    e->free_review = slot;
    e->reviews_tracked--;
}

/* Forgets the reviews whose facts have left every window. */
static void forget_old_reviews(struct engine *e)
{
    while (e->fifo_len > 0) {
        uint32_t slot = e->fifo[e->fifo_head];
        if (e->clock == INT64_MIN || e->clock - e->reviews[slot].time < e->horizon) break;
        review_forget(e, slot);
        e->fifo_head = (e->fifo_head + 1) % e->fifo_cap;
        e->fifo_len--;
    }
}

static void fifo_push(struct engine *e, uint32_t slot)
{
    if (e->fifo_len == e->fifo_cap) {
        size_t old = e->fifo_cap;
        uint32_t *items = xmalloc((old ? old * 2 : 64) * sizeof(*items));
        for (size_t i = 0; i < e->fifo_len; i++)
            items[i] = e->fifo[(e->fifo_head + i) % old];
        free(e->fifo);
        e->fifo = items;
        e->fifo_cap = old ? old * 2 : 64;
        e->fifo_head = 0;
    }
    e->fifo[(e->fifo_head + e->fifo_len) % e->fifo_cap] = slot;
    e->fifo_len++;
}

static void touch(struct engine *e, struct group *g)
{
    if (g->touched) return;
    g->touched = 1;
    push_index(&e->touched, &e->touched_len, &e->touched_cap, (uint32_t)g->seq);
}

/* The review of f, its earlier version's facts retracted when f is of a later
 * one; NULL when f belongs to an older version than one already seen. */
static char *review_key(const struct engine_fact *f)
{
    const char *jurisdiction = f->labels.values[FACT_JURISDICTION];
    char *key;
    if (asprintf(&key, "%s/%s", jurisdiction ? jurisdiction : "", f->review_id) < 0) sn_oom(0);
    return key;
}

/* key (review_key(f)) is stolen. */
static struct review *review_enter(struct engine *e, const struct engine_fact *f, char *key,
                                   int evaluating)
{
    json_t *index = json_object_get(e->review_index, key);
    struct review *rv;
    if (index) {
        free(key);
        rv = &e->reviews[json_integer_value(index)];
        if (f->review_version < rv->version) return NULL;
        if (f->review_version > rv->version) {
            for (size_t i = 0; i < rv->held_len; i++) {
                struct group *g = e->groups[rv->held[i].group];
                if (window_remove_slot(g->window, rv->held[i].slot, rv->held[i].fact_id) &&
                    evaluating)
                    touch(e, g);
            }
            rv->held_len = 0;
            rv->version = f->review_version;
        }
        if (f->time_ms > rv->time) rv->time = f->time_ms;
        return rv;
    }
    uint32_t slot = e->free_review;
    if (slot != NO_SLOT) {
        e->free_review = e->reviews[slot].next_free;
    } else {
        if (e->reviews_len == e->reviews_cap)
            e->reviews = grow(e->reviews, &e->reviews_cap, sizeof(*e->reviews));
        slot = (uint32_t)e->reviews_len++;
    }
    rv = &e->reviews[slot];
    memset(rv, 0, sizeof(*rv));
    rv->key = key;
    rv->version = f->review_version;
    rv->time = f->time_ms;
    json_object_set_new(e->review_index, key, json_integer(slot));
    fifo_push(e, slot);
    e->reviews_tracked++;
    return rv;
}

static void add_fact(struct engine *e, struct review *rv, const struct engine_fact *f,
                     int evaluating)
{
    /* each label looked up once here, not once per window */
    uint32_t breakdown[WINDOW_BREAKDOWNS], jurisdiction = WINDOW_NO_ID;
    int ids_known = 0;
    uint32_t review = (uint32_t)(rv - e->reviews);
    const char *kind = f->labels.values[FACT_KIND];
    int opportunity = kind && strcmp(kind, "improvement_opportunity") == 0;
    for (size_t i = 0; i < rule_set_count(e->rs); i++) {
        const struct rule *r = rule_set_get(e->rs, i);
        if (!rule_matches(r, &f->labels)) continue;
        /* a rule without group_by has one group: no key to build */
        char *key = r->group_by_count ? rule_group_key(r, &f->labels) : NULL;
        struct group *g = group_find(e, i, key ? key : "");
        if (!g) g = group_create(e, i, key ? key : "", rule_group_object(r, &f->labels));
        free(key);
        if (!ids_known) {
            ids_known = 1;
            jurisdiction = label_id(e, f->labels.values[FACT_JURISDICTION]);
            for (int d = 0; d < WINDOW_BREAKDOWNS; d++)
                breakdown[d] = label_id(e, f->labels.values[BREAKDOWN_LABELS[d]]);
        }
        /* windows keep no map of fact ids: a fact given twice is held once */
        int held_already = 0;
        for (size_t k = 0; k < rv->held_len && !held_already; k++)
            held_already = rv->held[k].fact_id == f->id && rv->held[k].group == g->seq;
        if (held_already) continue;
        uint32_t slot = window_add_ids(g->window, f->id, f->time_ms, review, jurisdiction,
                                       breakdown, opportunity);
        if (slot == WINDOW_NO_ID) continue;
        if (rv->held_len == rv->held_cap) {
            /* a review holds a few facts in a few windows: start small */
            rv->held_cap = rv->held_cap ? rv->held_cap * 2 : 4;
            rv->held = xrealloc(rv->held, rv->held_cap * sizeof(*rv->held));
        }
        rv->held[rv->held_len++] = (struct held){(uint32_t)g->seq, slot, f->id};
        if (evaluating) touch(e, g);
    }
}

/* ---- the clock ---- */

/* Moves the clock to t, evaluating every group at what falls due on the way:
 * up to t included, or only before t when facts at t are about to come in
 * (their groups are then evaluated at t with them, so that a deadline and a
 * fact at the same moment give one revision, not two). */
static void move_clock(struct engine *e, int64_t t, int before_t)
{
    if (e->clock != INT64_MIN && t < e->clock) t = e->clock;
    e->clock = t;
    int64_t last = before_t ? t - 1 : t;
    if (e->next_due <= last) {
        int64_t next = INT64_MAX;
        for (size_t i = 0; i < e->groups_len; i++) {
            struct group *g = e->groups[i];
            if (g->due <= last) {
                group_catch_up(e, g, last);
                g->due = group_due(e, g);
            }
            if (g->due < next) next = g->due;
        }
        e->next_due = next;
    }
    forget_old_reviews(e);
}

void engine_advance(struct engine *e, int64_t now_ms)
{
    move_clock(e, now_ms, 0);
    flush_pending(e);
}

void engine_add_review(struct engine *e, const struct engine_fact *facts, size_t n)
{
    if (n == 0) return;
    int64_t t = facts[0].time_ms;
    for (size_t i = 1; i < n; i++)
        if (facts[i].time_ms > t) t = facts[i].time_ms;
    move_clock(e, t, 1);
    /* facts of one review version: one key, one version check */
    struct review *rv = review_enter(e, &facts[0], review_key(&facts[0]), 1);
    for (size_t i = 0; rv && i < n; i++)
        add_fact(e, rv, &facts[i], 1);
    for (size_t i = 0; i < e->touched_len; i++) {
        struct group *g = e->groups[e->touched[i]];
        g->touched = 0;
        window_advance(g->window, e->clock);
        evaluate(e, g, e->clock);
        set_due(e, g);
    }
    e->touched_len = 0;
    /* groups not touched whose deadline is now */
    move_clock(e, e->clock, 0);
    flush_pending(e);
}

/* ---- restoring a checkpoint ---- */

void engine_restore_clock(struct engine *e, int64_t clock_ms)
{
    e->clock = clock_ms;
}

int engine_restore_episode(struct engine *e, const struct engine_episode *ep)
{
    size_t rule = 0, n = rule_set_count(e->rs);
    while (rule < n && strcmp(rule_set_get(e->rs, rule)->id, ep->rule) != 0)
        rule++;
    if (rule == n) return 0;
    struct group *g = group_find(e, rule, ep->group_key);
    if (!g) g = group_create(e, rule, ep->group_key, json_deep_copy(ep->group));
    g->ep = ep->state;
    /* a level index beyond the rule's levels (the rule lost levels in a
     * reload) is clamped to the highest */
    const struct rule *r = rule_set_get(e->rs, rule);
    if (g->ep.level >= (int)r->level_count) g->ep.level = (int)r->level_count - 1;
    snprintf(g->notice_id, sizeof(g->notice_id), "%s", ep->notice_id);
    g->started_at = ep->started_at;
    return 1;
}

void engine_restore_fact(struct engine *e, const struct engine_fact *f)
{
    struct review *rv = review_enter(e, f, review_key(f), 0);
    if (rv) add_fact(e, rv, f, 0);
}

void engine_restore_done(struct engine *e, int correct)
{
    if (e->clock == INT64_MIN) return;
    e->correcting = correct;
    for (size_t i = 0; i < e->groups_len; i++) {
        struct group *g = e->groups[i];
        window_advance(g->window, e->clock);
        evaluate(e, g, e->clock);
    }
    e->correcting = 0;
    e->next_due = INT64_MAX;
    for (size_t i = 0; i < e->groups_len; i++)
        set_due(e, e->groups[i]);
    forget_old_reviews(e);
    flush_pending(e);
}

size_t engine_take_changes(struct engine *e, void (*fn)(const struct engine_episode *ep, void *arg),
                           void *arg)
{
    size_t n = e->changed_len;
    for (size_t i = 0; i < n; i++) {
        struct group *g = e->groups[e->changed[i]];
        g->changed = 0;
        struct engine_episode ep = {rule_set_get(e->rs, g->rule)->id,
                                    g->key,
                                    g->labels,
                                    g->notice_id,
                                    g->started_at,
                                    g->ep};
        if (fn) fn(&ep, arg);
    }
    e->changed_len = 0;
    return n;
}

struct engine_stats engine_get_stats(const struct engine *e)
{
    struct engine_stats s = {e->groups_len, 0, 0, e->reviews_tracked};
    for (size_t i = 0; i < e->groups_len; i++) {
        const struct group *g = e->groups[i];
        s.active_episodes += g->ep.active != 0;
        s.facts_held += window_current(g->window).facts + window_previous(g->window).facts;
    }
    return s;
}
