/* engine_bench: facts per second through the rule engine (broker/engine.c)
 * with 20 rules, at several sizes of history, and the resident memory per
 * fact the windows hold. Each run is a child process of its own, so that the
 * heap of one size does not carry over into the memory figures of the next.
 *
 * Two tables. A: windows of a fixed size (10k facts in the longest) behind
 * which 10k, 100k or 1M facts of history have passed: the cost of a fact
 * must not grow with the history (the issue's target). B: windows that hold
 * the whole history in steady state (event times spaced so that the longest
 * window, 365 days, holds `history` facts): the cost of bigger windows, where
 * the maps outgrow the CPU caches. The engine is first fed `history` facts
 * (not timed), then the next --measure facts are timed while facts enter and
 * leave the windows at the same rate. Facts are generated on the fly, a chunk
 * at a time, by a fixed pseudo-random generator (no rand()): the same
 * arguments give the same facts on every machine, and only the engine's calls
 * are timed.
 *
 * The rules are written for windows of 10k facts; in B they are scaled to
 * each history: min_reviews times history/10k, repeat_interval and
 * resolve_after times 10k/history, so that every history sees the same
 * notice dynamics per fact. Windows stay as written (90 to 365 days).
 *
 * Exit status 0 whether or not the target is met (a benchmark reports; it
 * does not fail the build), 1 when it cannot run, 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "rules.h"
#include "schema.h"
#include "sn.h"
#include "../unit/test_schemas.h"

#define PROG                "engine_bench"
#define DAY_MS              (86400000LL)
#define T0                  (1767225600000LL) /* 2026-01-01T00:00:00Z */
#define LONGEST_WINDOW_DAYS 365
#define REFERENCE_HISTORY   10000 /* the history the rules below are written for */
#define DEFAULT_MEASURE     200000
#define TARGET_RATIO        1.5
#define MAX_HISTORIES       16
#define MIN_HISTORY         1000
#define MAX_HISTORY         100000000ULL
#define MAX_MEASURE         1000000000ULL
#define CHUNK_REVIEWS       256
/* The measured facts are timed in slices, and the median slice reported: a
 * burst of other work on the machine moves one slice, not the figure. */
#define SLICES               10
#define ROUNDS               3 /* each history run this often, interleaved: the median is shown */
#define MAX_OPPORTUNITIES    5
#define MAX_NEEDS            2
#define MAX_FACTS_PER_REVIEW (MAX_OPPORTUNITIES + MAX_NEEDS)

/* ---- the rules ---- */

struct bench_level {
    const char *severity;
    unsigned reviews; /* min_reviews at REFERENCE_HISTORY */
    unsigned jurisdictions;
    double growth; /* min_growth, 0 for none */
};

struct bench_rule {
    const char *id;
    const char *match[4];    /* NULL-terminated */
    const char *group_by[3]; /* NULL-terminated */
    unsigned window_days;
    unsigned repeat_days, resolve_days; /* at REFERENCE_HISTORY */
    struct bench_level levels[2];
};

/* Tables read best aligned by hand. */
/* clang-format off */
static const struct bench_rule RULES[] = {
    /* as in deploy/rules/ */
    {"teamwork-law-enforcement",
     {"kind=improvement_opportunity", "theme=teamwork_coordination", "partner=law_enforcement"},
     {NULL}, 180, 14, 30, {{"advisory", 140, 20, 0}, {"warning", 175, 30, 0}}},
    {"economic-support-suid",
     {"kind=family_need", "need=economic_support", "cause=suid"},
     {NULL}, 180, 14, 30, {{"advisory", 45, 15, 0}, {"warning", 60, 25, 0}}},
    {"economic-support-suid-spike",
     {"kind=family_need", "need=economic_support", "cause=suid"},
     {NULL}, 90, 14, 14, {{"watch", 25, 10, 1.5}, {"warning", 30, 15, 2.0}}},
    {"recurring-theme",
     {"kind=improvement_opportunity"},
     {"theme", NULL}, 180, 30, 30, {{"advisory", 350, 30, 0}, {"watch", 800, 40, 0}}},
    /* group_by partner, cause, need, two labels */
    {"teamwork-by-partner",
     {"kind=improvement_opportunity", "theme=teamwork_coordination", "partner!=\"\""},
     {"partner", NULL}, 365, 30, 30, {{"advisory", 160, 25, 0}, {"warning", 300, 40, 0}}},
    {"needs-by-cause",
     {"kind=family_need"},
     {"cause", NULL}, 365, 30, 60, {{"advisory", 300, 30, 0}, {"watch", 400, 40, 0}}},
    {"needs-by-need",
     {"kind=family_need"},
     {"need", NULL}, 180, 30, 30, {{"advisory", 120, 25, 0}, {"watch", 200, 35, 0}}},
    {"theme-partner-priority",
     {"kind=improvement_opportunity", "priority=high"},
     {"theme", "partner", NULL}, 270, 30, 30, {{"advisory", 200, 20, 0}, {"warning", 260, 30, 0}}},
    /* regular expressions */
    {"coordination-justice",
     {"theme=~teamwork_coordination|information_sharing", "partner=~law_enforcement|judiciary"},
     {NULL}, 180, 14, 30, {{"advisory", 250, 25, 0}, {"warning", 300, 35, 0}}},
    {"high-priority-other-themes",
     {"kind=improvement_opportunity", "priority=high",
      "theme!~teamwork_coordination|economic_support"},
     {"theme", NULL}, 365, 30, 30, {{"advisory", 200, 20, 0}, {"watch", 240, 30, 0}}},
    {"behavioral-needs",
     {"kind=family_need", "need=~substance_use_treatment|mental_health"},
     {"need", NULL}, 180, 30, 30, {{"advisory", 105, 25, 0}, {"warning", 140, 35, 0}}},
    {"workforce",
     {"kind=improvement_opportunity", "theme=~workload|supervision|training"},
     {"theme", NULL}, 270, 30, 30, {{"advisory", 340, 25, 0}, {"watch", 400, 35, 0}}},
    {"firearm-poisoning",
     {"kind=improvement_opportunity", "cause=~firearm|ingestion_poisoning"},
     {"cause", NULL}, 365, 30, 30, {{"advisory", 330, 30, 0}, {"warning", 400, 40, 0}}},
    {"information-sharing-health",
     {"theme=information_sharing", "partner=~medical|public_health"},
     {NULL}, 180, 14, 30, {{"advisory", 45, 15, 0}, {"warning", 60, 20, 0}}},
    /* single codes */
    {"infant-safe-sleep",
     {"kind=family_need", "need=safe_sleep", "age_band=0-3"},
     {NULL}, 120, 14, 30, {{"advisory", 30, 12, 0}, {"warning", 40, 18, 0}}},
    {"economic-support-theme-spike",
     {"kind=improvement_opportunity", "theme=economic_support"},
     {NULL}, 90, 14, 14, {{"watch", 100, 15, 1.5}, {"warning", 120, 20, 2.0}}},
    {"intake-screening-fatalities",
     {"kind=improvement_opportunity", "theme=intake_screening", "incident_type=fatality"},
     {NULL}, 180, 14, 30, {{"advisory", 80, 12, 0}, {"warning", 100, 20, 0}}},
    {"domestic-violence-partner",
     {"kind=improvement_opportunity", "partner=domestic_violence_services"},
     {NULL}, 365, 30, 30, {{"advisory", 200, 25, 0}, {"warning", 240, 35, 0}}},
    {"high-priority-by-seips",
     {"kind=improvement_opportunity", "priority=high"},
     {"seips_domain", NULL}, 90, 14, 14, {{"advisory", 150, 25, 0}, {"watch", 180, 35, 0}}},
    {"housing-by-age",
     {"kind=family_need", "need=housing"},
     {"age_band", NULL}, 365, 30, 30, {{"advisory", 90, 20, 0}, {"warning", 120, 30, 0}}},
};
/* clang-format on */

/* ---- the facts ---- */

struct code_weight {
    const char *code;
    unsigned weight;
};

/* clang-format off */

/* 50 states, then 10 counties and tribes; drawn with weights falling with the position */
static const char *const JURISDICTIONS[] = {
    "US-CA", "US-TX", "US-FL", "US-NY", "US-PA", "US-IL", "US-OH", "US-GA", "US-NC", "US-MI",
    "US-NJ", "US-VA", "US-WA", "US-AZ", "US-TN", "US-MA", "US-IN", "US-MD", "US-MO", "US-WI",
    "US-CO", "US-MN", "US-SC", "US-AL", "US-LA", "US-KY", "US-OR", "US-OK", "US-CT", "US-UT",
    "US-IA", "US-NV", "US-AR", "US-KS", "US-MS", "US-NM", "US-NE", "US-ID", "US-WV", "US-HI",
    "US-NH", "US-ME", "US-MT", "US-RI", "US-DE", "US-SD", "US-ND", "US-AK", "US-VT", "US-WY",
    "US-CA-LAC", "US-TX-HAR", "US-IL-COO", "US-AZ-MAR", "US-WA-KIN", "US-MN-HEN",
    "US-AZ-NAVAJO", "US-SD-OGLALA", "US-OK-CHEROKEE", "US-MT-BLACKFEET",
};
#define JURISDICTION_COUNT SN_ARRAY_LEN(JURISDICTIONS)

static const struct code_weight CAUSES[] = {
    {"suid", 24}, {"abusive_head_trauma", 10}, {"other_physical_abuse", 12},
    {"neglect_supervision", 12}, {"neglect_medical", 5}, {"drowning", 6}, {"firearm", 7},
    {"ingestion_poisoning", 9}, {"vehicle", 5}, {"fire", 3}, {"suicide", 4}, {"other", 2},
    {"undetermined", 1},
};
/* of causes other than suid and abusive_head_trauma (infants: 0-3) */
static const struct code_weight AGE_BANDS[] = {
    {"0-3", 35}, {"4-7", 25}, {"8-12", 20}, {"13-17", 20},
};
static const struct code_weight INCIDENT_TYPES[] = {
    {"fatality", 50}, {"near_fatality", 35}, {"serious_injury", 15},
};
/* economic_support is modulated over time (wave_permille) */
static const struct code_weight THEMES[] = {
    {"teamwork_coordination", 30}, {"economic_support", 6}, {"information_sharing", 12},
    {"assessment", 10}, {"safety_planning", 8}, {"service_availability", 8}, {"workload", 7},
    {"supervision", 6}, {"training", 5}, {"policy", 5}, {"technology", 4},
    {"family_engagement", 6}, {"cultural_responsiveness", 3}, {"intake_screening", 5},
    {"caseworker_safety", 2},
};
#define THEME_ECONOMIC 1
static const struct code_weight SUBTHEMES[] = {
    {"joint_investigation", 1}, {"cross_system_communication", 1}, {"handoff_transition", 1},
    {"case_consultation", 1}, {"concrete_supports", 1}, {"benefits_enrollment", 1},
    {"safe_sleep_resources", 1}, {"records_access", 1}, {"history_review", 1},
    {"tool_fidelity", 1}, {"plan_monitoring", 1}, {"waitlist", 1}, {"transportation", 1},
    {"turnover", 1}, {"reflective_supervision", 1}, {"father_engagement", 1},
    {"language_access", 1},
};
static const struct code_weight PARTNERS[] = {
    {"law_enforcement", 30}, {"medical", 15}, {"behavioral_health", 10}, {"judiciary", 8},
    {"education", 7}, {"substance_use_treatment", 6}, {"public_health", 6},
    {"domestic_violence_services", 5}, {"housing", 4}, {"economic_assistance", 4},
    {"tribal_services", 3}, {"community_organization", 2},
};
static const struct code_weight SEIPS_DOMAINS[] = {
    {"person", 16}, {"tasks", 24}, {"tools_technology", 12}, {"organization", 28},
    {"internal_environment", 8}, {"external_environment", 12},
};
static const struct code_weight PRIORITIES[] = {{"low", 22}, {"medium", 50}, {"high", 28}};
/* economic_support is modulated over time and three times as likely after a
 * SUID, safe_sleep four times */
static const struct code_weight NEEDS[] = {
    {"economic_support", 10}, {"housing", 9}, {"substance_use_treatment", 10},
    {"mental_health", 12}, {"domestic_violence_support", 7}, {"child_care", 6},
    {"parenting_support", 9}, {"safe_sleep", 4}, {"medical_care", 5}, {"transportation", 4},
    {"food_security", 5}, {"legal_assistance", 3},
};
#define NEED_ECONOMIC   0
#define NEED_SAFE_SLEEP 7
/* 1..5 improvement opportunities and 0..2 family needs: 2.2 + 0.45 facts a review */
static const unsigned OPPORTUNITY_COUNT_WEIGHTS[MAX_OPPORTUNITIES] = {35, 30, 20, 10, 5};
static const unsigned NEED_COUNT_WEIGHTS[MAX_NEEDS + 1] = {65, 25, 10};
#define SUBTHEME_PCT 40
#define PARTNER_PCT  50

/* clang-format on */

/* The vocabulary sets the tables draw from, checked at start-up. */
static const struct {
    const char *set;
    const struct code_weight *table;
    size_t len;
} CODED[] = {
    {"cause", CAUSES, SN_ARRAY_LEN(CAUSES)},          {"theme", THEMES, SN_ARRAY_LEN(THEMES)},
    {"subtheme", SUBTHEMES, SN_ARRAY_LEN(SUBTHEMES)}, {"partner", PARTNERS, SN_ARRAY_LEN(PARTNERS)},
    {"family_need", NEEDS, SN_ARRAY_LEN(NEEDS)},
};

/* splitmix64: small, fast, and the same sequence everywhere */
struct rng {
    uint64_t state;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 0..n-1, n < 2^32 */
static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(((rng_next(r) >> 32) * n) >> 32);
}

static size_t draw_index(struct rng *r, const unsigned *weights, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    unsigned x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i]) return i;
        x -= weights[i];
    }
    return n - 1;
}

/* scale: per mille of the weight of entry `scaled` (SIZE_MAX: none) */
static size_t draw_code(struct rng *r, const struct code_weight *t, size_t n, size_t scaled,
                        unsigned scale)
{
    unsigned weights[32];
    if (n > SN_ARRAY_LEN(weights)) n = SN_ARRAY_LEN(weights);
    for (size_t i = 0; i < n; i++) {
        unsigned w = t[i].weight * 1000;
        weights[i] = i == scaled ? (unsigned)((uint64_t)w * scale / 1000) + 1 : w;
    }
    return draw_index(r, weights, n);
}

static const char *draw(struct rng *r, const struct code_weight *t, size_t n)
{
    return t[draw_code(r, t, n, SIZE_MAX, 1000)].code;
}

struct review_slot {
    size_t first, count; /* in chunk.facts */
    char id[24];
};

/* One chunk of generated reviews: a fixed buffer, reused */
struct chunk {
    struct engine_fact facts[CHUNK_REVIEWS * MAX_FACTS_PER_REVIEW];
    struct review_slot reviews[CHUNK_REVIEWS];
    size_t review_count, fact_count;
};

struct generator {
    struct rng rng;
    uint64_t held; /* facts the longest window holds in steady state */
    uint64_t facts_fed, reviews_fed;
    int64_t window_ms; /* of the longest window */
    unsigned jurisdiction_weights[JURISDICTION_COUNT];
};

static void generator_init(struct generator *g, uint64_t held)
{
    memset(g, 0, sizeof(*g));
    g->rng.state = 0x5eedULL;
    g->held = held;
    g->window_ms = LONGEST_WINDOW_DAYS * DAY_MS;
    /* a long tail: the largest jurisdiction sends 15 times the reviews of
     * the smallest */
    for (size_t i = 0; i < JURISDICTION_COUNT; i++)
        g->jurisdiction_weights[i] = (unsigned)(120 / (i + 4)) + 1;
}

/* Economic support rises and falls, in a triangle over half the longest
 * window (in facts, so the same at every history): 250..1750 per mille. The
 * spike rules see it. */
static unsigned wave_permille(const struct generator *g)
{
    uint64_t period = g->held / 2;
    uint64_t phase = (g->facts_fed % period) * 2000 / period; /* 0..1999 */
    uint64_t tri = phase < 1000 ? phase : 2000 - phase;       /* 0..1000 */
    return (unsigned)(250 + tri * 3 / 2);
}

static struct engine_fact *fact_next(struct chunk *c, const char *review_id,
                                     const char *jurisdiction)
{
    struct engine_fact *f = &c->facts[c->fact_count++];
    memset(f, 0, sizeof(*f));
    f->review_id = review_id;
    f->review_version = 1;
    f->labels.values[FACT_JURISDICTION] = jurisdiction;
    return f;
}

/* Appends one review to c: its facts share the review's time, spaced so
 * that the longest window holds `history` facts. */
static void review_generate(struct generator *g, struct chunk *c)
{
    struct rng *r = &g->rng;
    struct review_slot *rv = &c->reviews[c->review_count++];
    rv->first = c->fact_count;
    snprintf(rv->id, sizeof(rv->id), "rv-%" PRIu64, g->reviews_fed);
    /* facts_fed * window_ms / history, without overflowing for long runs */
    uint64_t window = (uint64_t)g->window_ms;
    int64_t time = T0 + (int64_t)(g->facts_fed / g->held * window +
                                  g->facts_fed % g->held * window / g->held);

    const char *jurisdiction =
        JURISDICTIONS[draw_index(r, g->jurisdiction_weights, JURISDICTION_COUNT)];
    const char *cause = draw(r, CAUSES, SN_ARRAY_LEN(CAUSES));
    int infant = strcmp(cause, "suid") == 0 || strcmp(cause, "abusive_head_trauma") == 0;
    const char *age_band = infant ? "0-3" : draw(r, AGE_BANDS, SN_ARRAY_LEN(AGE_BANDS));
    const char *incident_type = draw(r, INCIDENT_TYPES, SN_ARRAY_LEN(INCIDENT_TYPES));
    unsigned wave = wave_permille(g);
    int suid = strcmp(cause, "suid") == 0;

    size_t opportunities =
        1 + draw_index(r, OPPORTUNITY_COUNT_WEIGHTS, SN_ARRAY_LEN(OPPORTUNITY_COUNT_WEIGHTS));
    for (size_t i = 0; i < opportunities; i++) {
        struct engine_fact *f = fact_next(c, rv->id, jurisdiction);
        const char **v = f->labels.values;
        v[FACT_KIND] = "improvement_opportunity";
        v[FACT_THEME] =
            THEMES[draw_code(r, THEMES, SN_ARRAY_LEN(THEMES), THEME_ECONOMIC, wave)].code;
        if (rng_below(r, 100) < SUBTHEME_PCT)
            v[FACT_SUBTHEME] = SUBTHEMES[rng_below(r, SN_ARRAY_LEN(SUBTHEMES))].code;
        if (rng_below(r, 100) < PARTNER_PCT)
            v[FACT_PARTNER] = draw(r, PARTNERS, SN_ARRAY_LEN(PARTNERS));
        v[FACT_SEIPS_DOMAIN] = draw(r, SEIPS_DOMAINS, SN_ARRAY_LEN(SEIPS_DOMAINS));
        v[FACT_PRIORITY] = draw(r, PRIORITIES, SN_ARRAY_LEN(PRIORITIES));
    }
    size_t needs = draw_index(r, NEED_COUNT_WEIGHTS, SN_ARRAY_LEN(NEED_COUNT_WEIGHTS));
    size_t first_need = SIZE_MAX;
    for (size_t i = 0; i < needs; i++) {
        unsigned weights[SN_ARRAY_LEN(NEEDS)];
        for (size_t k = 0; k < SN_ARRAY_LEN(NEEDS); k++)
            weights[k] = NEEDS[k].weight * 1000;
        weights[NEED_ECONOMIC] = NEEDS[NEED_ECONOMIC].weight * (suid ? 3 : 1) * wave;
        if (suid) weights[NEED_SAFE_SLEEP] *= 4;
        /* a review lists a need once */
        if (first_need != SIZE_MAX) weights[first_need] = 0;
        size_t need = draw_index(r, weights, SN_ARRAY_LEN(NEEDS));
        first_need = need;
        struct engine_fact *f = fact_next(c, rv->id, jurisdiction);
        f->labels.values[FACT_KIND] = "family_need";
        f->labels.values[FACT_NEED] = NEEDS[need].code;
    }
    rv->count = c->fact_count - rv->first;
    for (size_t i = rv->first; i < c->fact_count; i++) {
        struct engine_fact *f = &c->facts[i];
        f->id = (int64_t)++g->facts_fed;
        f->time_ms = time;
        f->labels.values[FACT_CAUSE] = cause;
        f->labels.values[FACT_AGE_BAND] = age_band;
        f->labels.values[FACT_INCIDENT_TYPE] = incident_type;
    }
    g->reviews_fed++;
}

/* Fills c with reviews until it is full or `until` facts have been made. */
static void chunk_fill(struct generator *g, struct chunk *c, uint64_t until)
{
    c->review_count = c->fact_count = 0;
    while (c->review_count < CHUNK_REVIEWS && g->facts_fed < until)
        review_generate(g, c);
}

static void chunk_feed(struct engine *e, const struct chunk *c)
{
    for (size_t i = 0; i < c->review_count; i++)
        engine_add_review(e, &c->facts[c->reviews[i].first], c->reviews[i].count);
}

/* ---- one history ---- */

struct revision_counts {
    uint64_t total;
    uint64_t by_status[5]; /* enum revision_status */
};

static void count_revision(json_t *revision, const char *group_key, int64_t started_at, void *arg)
{
    (void)group_key;
    (void)started_at;
    struct revision_counts *counts = arg;
    const char *status = json_string_value(json_object_get(revision, "status"));
    counts->total++;
    for (int s = REVISION_ISSUED; s <= REVISION_RESOLVED; s++)
        if (status && strcmp(status, revision_status_name((enum revision_status)s)) == 0)
            counts->by_status[s]++;
    json_decref(revision);
}

/* What a child reports to the parent through a pipe. */
struct result {
    int ok;
    char error[512];
    uint64_t history, held;
    uint64_t facts_measured, ns;
    uint64_t slice_facts[SLICES], slice_ns[SLICES];
    uint64_t facts_in_span; /* distinct facts fed within the horizon at the end of warm-up */
    size_t facts_held, groups, active_episodes, reviews_tracked;
    long long rss_delta; /* bytes: after warm-up minus before the engine */
    struct revision_counts warmup, measured;
};

static struct chunk chunk;

/* Resident set size in bytes, or -1. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long long size = 0, resident = -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t scaled_count(unsigned at_reference, uint64_t history)
{
    uint64_t n = ((uint64_t)at_reference * history + REFERENCE_HISTORY / 2) / REFERENCE_HISTORY;
    return n < 1 ? 1 : n > 1000000 ? 1000000 : n;
}

/* A duration written for REFERENCE_HISTORY, in seconds at history. */
static json_t *scaled_duration(unsigned days, uint64_t history)
{
    uint64_t s = (uint64_t)days * 86400 * REFERENCE_HISTORY / history;
    return json_sprintf("%" PRIu64 "s", s < 1 ? 1 : s);
}

/* Appends value (stolen) to array; clears *ok when that fails. */
static void append(json_t *array, json_t *value, int *ok)
{
    if (json_array_append_new(array, value) != 0) *ok = 0;
}

/* The rule as a rules file writes it, scaled to history; NULL when out of
 * memory. */
static json_t *rule_json(const struct bench_rule *br, uint64_t history)
{
    json_t *match = json_array(), *group_by = json_array(), *levels = json_array();
    char topic[256] = "notices.bench", headline[512] = "", summary[600];
    size_t topic_len = strlen(topic), headline_len = 0;
    int ok = 1;
    for (size_t i = 0; i < SN_ARRAY_LEN(br->match) && br->match[i]; i++)
        append(match, json_string(br->match[i]), &ok);
    for (size_t i = 0; i < SN_ARRAY_LEN(br->group_by) && br->group_by[i]; i++) {
        append(group_by, json_string(br->group_by[i]), &ok);
        topic_len += (size_t)snprintf(topic + topic_len, sizeof(topic) - topic_len, ".{%s}",
                                      br->group_by[i]);
        headline_len += (size_t)snprintf(headline + headline_len, sizeof(headline) - headline_len,
                                         "{%s} ", br->group_by[i]);
    }
    snprintf(headline + headline_len, sizeof(headline) - headline_len,
             "%s: {reviews} reviews from {jurisdictions} jurisdictions in {window}", br->id);
    snprintf(summary, sizeof(summary), "%s ({severity})", headline);
    for (size_t i = 0; i < SN_ARRAY_LEN(br->levels); i++) {
        const struct bench_level *l = &br->levels[i];
        json_t *level = json_pack("{s:s,s:I,s:I}", "severity", l->severity, "min_reviews",
                                  (json_int_t)scaled_count(l->reviews, history),
                                  "min_jurisdictions", (json_int_t)l->jurisdictions);
        if (level && l->growth > 0 &&
            json_object_set_new(level, "min_growth", json_real(l->growth)) != 0)
            ok = 0;
        append(levels, level, &ok);
    }
    if (!ok) {
        json_decref(match);
        json_decref(group_by);
        json_decref(levels);
        return NULL;
    }
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:s}", "id", br->id, "description",
                     "engine_bench", "match", match, "group_by", group_by, "window",
                     json_sprintf("%ud", br->window_days), "levels", levels, "repeat_interval",
                     scaled_duration(br->repeat_days, history), "resolve_after",
                     scaled_duration(br->resolve_days, history), "topic", topic, "headline",
                     headline, "summary", summary);
}

/* Writes the rules scaled to history into a temporary file and loads them
 * with the broker's loader. */
static struct rule_set *rules_for_history(const struct schema_set *schemas, uint64_t history,
                                          char *err, size_t errlen)
{
    json_t *rules = json_array();
    for (size_t i = 0; i < SN_ARRAY_LEN(RULES); i++) {
        json_t *rule = rule_json(&RULES[i], history);
        if (!rule || json_array_append_new(rules, rule) != 0) {
            sn_errf(err, errlen, "cannot build rule %s", RULES[i].id);
            json_decref(rules);
            return NULL;
        }
    }
    json_t *file = json_pack("{s:o}", "rules", rules);
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/engine-bench-XXXXXX.json", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(path, 5);
    if (fd < 0) {
        sn_errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        json_decref(file);
        return NULL;
    }
    close(fd);
    int written = file ? json_dump_file(file, path, JSON_INDENT(2)) : -1;
    json_decref(file);
    if (written != 0) {
        sn_errf(err, errlen, "cannot write the rules to %s", path);
        unlink(path);
        return NULL;
    }
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    if (rules_load(path, schemas, &rs, errors) != SN_OK) {
        char *dump = json_dumps(errors, JSON_COMPACT);
        sn_errf(err, errlen, "the rules did not load: %s", dump ? dump : "?");
        free(dump);
        rs = NULL;
    }
    json_decref(errors);
    unlink(path);
    return rs;
}

/* history facts fed before measuring, with windows sized to hold `held`
 * facts in steady state (held == history: the windows hold the history). */
static void run_history(const struct schema_set *schemas, uint64_t history, uint64_t held,
                        uint64_t measure, struct result *res)
{
    memset(res, 0, sizeof(*res));
    res->history = history;
    res->held = held;
    struct rule_set *rs = rules_for_history(schemas, held, res->error, sizeof(res->error));
    if (!rs) return;
    static const char *const unnamed[] = {"US-SD-OGLALA"};
    struct engine_options options = {3, unnamed, SN_ARRAY_LEN(unnamed), NULL};
    struct revision_counts counts = {0};
    struct generator g;
    generator_init(&g, held);
    /* the chunk's pages are resident before the baseline, not counted as the engine's */
    memset(&chunk, 0, sizeof(chunk));

    long long before = rss_bytes();
    struct engine *e = engine_new(rs, &options, count_revision, &counts);
    while (g.facts_fed < history) {
        chunk_fill(&g, &chunk, history);
        chunk_feed(e, &chunk);
    }
    long long after = rss_bytes();
    struct engine_stats stats = engine_get_stats(e);
    uint64_t span = (uint64_t)engine_horizon(e) * held / (uint64_t)g.window_ms;
    res->facts_in_span = span < g.facts_fed ? span : g.facts_fed;
    res->rss_delta = before < 0 || after < 0 ? -1 : after - before;
    res->facts_held = stats.facts_held;
    res->groups = stats.groups;
    res->active_episodes = stats.active_episodes;
    res->reviews_tracked = stats.reviews_tracked;
    res->warmup = counts;

    memset(&counts, 0, sizeof(counts));
    uint64_t start = g.facts_fed;
    for (int s = 0; s < SLICES; s++) {
        uint64_t from = g.facts_fed, until = start + measure * (uint64_t)(s + 1) / SLICES, ns = 0;
        while (g.facts_fed < until) {
            chunk_fill(&g, &chunk, until);
            uint64_t t = now_ns();
            chunk_feed(e, &chunk);
            ns += now_ns() - t;
        }
        res->slice_facts[s] = g.facts_fed - from;
        res->slice_ns[s] = ns;
        res->ns += ns;
    }
    res->facts_measured = g.facts_fed - start;
    res->measured = counts;
    engine_free(e);
    rule_set_free(rs);
    res->ok = 1;
}

/* Runs one history in a child process: a fresh heap for each. */
static int run_in_child(const struct schema_set *schemas, uint64_t history, uint64_t held,
                        uint64_t measure, struct result *res)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(res->error, sizeof(res->error), "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(res->error, sizeof(res->error), "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        struct result r;
        run_history(schemas, history, held, measure, &r);
        const char *p = (const char *)&r;
        size_t left = sizeof(r);
        while (left > 0) {
            ssize_t n = write(fds[1], p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) _exit(1);
            p += n;
            left -= (size_t)n;
        }
        _exit(0);
    }
    close(fds[1]);
    char *p = (char *)res;
    size_t got = 0;
    while (got < sizeof(*res)) {
        ssize_t n = read(fds[0], p + got, sizeof(*res) - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(*res) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        memset(res, 0, sizeof(*res));
        if (WIFSIGNALED(status))
            snprintf(res->error, sizeof(res->error), "the run died of signal %d", WTERMSIG(status));
        else
            snprintf(res->error, sizeof(res->error), "the run ended without a result");
        return -1;
    }
    return res->ok ? 0 : -1;
}

/* ---- the table ---- */

/* "10k", "1M", "2500" */
static void format_count(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, len, "%" PRIu64 "M", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "k", n / 1000);
    else
        snprintf(buf, len, "%" PRIu64, n);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The slices' ns per fact, sorted. Returns how many (slices with facts). */
static size_t slice_costs(const struct result *r, double out[SLICES])
{
    size_t n = 0;
    for (int s = 0; s < SLICES; s++)
        if (r->slice_facts[s] > 0) out[n++] = (double)r->slice_ns[s] / (double)r->slice_facts[s];
    qsort(out, n, sizeof(*out), cmp_double);
    return n;
}

/* The median slice's ns per fact. */
static double ns_per_fact(const struct result *r)
{
    double costs[SLICES];
    size_t n = slice_costs(r, costs);
    if (n == 0) return 0;
    return n % 2 ? costs[n / 2] : (costs[n / 2 - 1] + costs[n / 2]) / 2;
}

static void print_row(const struct result *r, const struct result *first)
{
    double ns = ns_per_fact(r), base = ns_per_fact(first);
    char held[32], fed[32];
    if (r->rss_delta < 0 || r->facts_held == 0)
        snprintf(held, sizeof(held), "?");
    else
        snprintf(held, sizeof(held), "%.0f B", (double)r->rss_delta / (double)r->facts_held);
    if (r->rss_delta < 0 || r->facts_in_span == 0)
        snprintf(fed, sizeof(fed), "?");
    else
        snprintf(fed, sizeof(fed), "%.0f B", (double)r->rss_delta / (double)r->facts_in_span);
    printf("%-9" PRIu64 "  %11zu  %9.0f  %8.0f  %6.2fx  %14s  %12s  %9" PRIu64 "\n", r->history,
           r->facts_held, ns > 0 ? 1e9 / ns : 0, ns, base > 0 ? ns / base : 0, held, fed,
           r->measured.total);
}

/* ---- arguments ---- */

static int parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_histories(const char *text, uint64_t *out, size_t *count)
{
    char buf[512];
    if (strlen(text) >= sizeof(buf)) return -1;
    snprintf(buf, sizeof(buf), "%s", text);
    *count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*count == MAX_HISTORIES) return -1;
        if (parse_number(tok, MIN_HISTORY, MAX_HISTORY, &out[*count]) != 0) return -1;
        (*count)++;
    }
    return *count > 0 ? 0 : -1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--schemas DIR] [--measure N] [--histories N,N,...]\n"
            "\n"
            "Facts per second through the rule engine with %zu rules, after N facts of\n"
            "history (the longest window, %d days, holding N facts), and the resident\n"
            "memory per fact held in windows.\n"
            "\n"
            "  --schemas DIR        the schemas (default: the repository's schemas/)\n"
            "  --measure N          facts timed per history (default %d)\n"
            "  --histories N,...    histories, %d to %llu facts (default 10000,100000,1000000)\n"
            "\n"
            "Prints a table; the last line compares the cost per fact at the largest history\n"
            "with the smallest (target <= %.1fx). Exit status 0 whether or not the target is\n"
            "met, 1 when the benchmark cannot run, 2 on bad usage.\n",
            SN_ARRAY_LEN(RULES), LONGEST_WINDOW_DAYS, DEFAULT_MEASURE, MIN_HISTORY,
            (unsigned long long)MAX_HISTORY, TARGET_RATIO);
}

/* Every code the generator draws is a code of the vocabulary. */
static int check_codes(const struct schema_set *schemas, char *err, size_t errlen)
{
    for (size_t s = 0; s < SN_ARRAY_LEN(CODED); s++) {
        const json_t *codes = schema_vocabulary_codes(schemas, CODED[s].set);
        if (!codes) {
            sn_errf(err, errlen, "the vocabulary has no set '%s'", CODED[s].set);
            return -1;
        }
        for (size_t i = 0; i < CODED[s].len; i++) {
            int found = 0;
            size_t k;
            json_t *c;
            json_array_foreach(codes, k, c) found |=
                strcmp(json_string_value(c) ? json_string_value(c) : "", CODED[s].table[i].code) ==
                0;
            if (!found) {
                sn_errf(err, errlen, "'%s' is not a %s code of the vocabulary",
                        CODED[s].table[i].code, CODED[s].set);
                return -1;
            }
        }
    }
    return 0;
}

/* Runs every history ROUNDS times (interleaved: the machines are shared and
 * noisy), keeps the round with the median cost of each, prints the table and
 * the ratio of the last history's cost to the first's. held 0: the windows
 * hold the history (sized so); else they hold `held` facts whatever the
 * history. Returns -1 on a failed run. */
static int run_table(const struct schema_set *schemas, const uint64_t *histories,
                     size_t history_count, uint64_t held, uint64_t measure,
                     struct result results[MAX_HISTORIES])
{
    static struct result runs[ROUNDS][MAX_HISTORIES];
    char first_label[32];
    format_count(histories[0], first_label, sizeof(first_label));
    char vs[40];
    snprintf(vs, sizeof(vs), "vs %s", first_label);
    printf("%-9s  %11s  %9s  %8s  %7s  %14s  %12s  %9s\n", "history", "facts held", "facts/s",
           "ns/fact", vs, "RSS/fact held", "RSS/fact fed", "revisions");
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < history_count; i++) {
            uint64_t window = held ? held : histories[i];
            if (run_in_child(schemas, histories[i], window, measure, &runs[round][i]) != 0) {
                fprintf(stderr, PROG ": history %" PRIu64 ": %s\n", histories[i],
                        runs[round][i].error);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < history_count; i++) {
        int order[ROUNDS];
        for (int round = 0; round < ROUNDS; round++)
            order[round] = round;
        for (int a = 1; a < ROUNDS; a++)
            for (int b = a; b > 0 && ns_per_fact(&runs[order[b]][i]) <
                                         ns_per_fact(&runs[order[b - 1]][i]);
                 b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        results[i] = runs[order[ROUNDS / 2]][i];
    }
    for (size_t i = 0; i < history_count; i++)
        print_row(&results[i], &results[0]);
    if (history_count > 1) {
        const struct result *first = &results[0], *last = &results[history_count - 1];
        double ratio = ns_per_fact(last) / ns_per_fact(first);
        char last_label[32];
        format_count(last->history, last_label, sizeof(last_label));
        printf("cost per fact at %s vs %s: %.2fx (target <= %.1fx): %s\n", last_label, first_label,
               ratio, TARGET_RATIO, ratio <= TARGET_RATIO ? "ok" : "NOT MET");
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_SCHEMAS = 256, OPT_MEASURE, OPT_HISTORIES };
    static const struct option options[] = {{"schemas", required_argument, NULL, OPT_SCHEMAS},
                                            {"measure", required_argument, NULL, OPT_MEASURE},
                                            {"histories", required_argument, NULL, OPT_HISTORIES},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    char schemas_dir[4096];
    test_find_schemas_dir(schemas_dir, sizeof(schemas_dir));
    uint64_t measure = DEFAULT_MEASURE;
    uint64_t histories[MAX_HISTORIES] = {10000, 100000, 1000000};
    size_t history_count = 3;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_SCHEMAS: snprintf(schemas_dir, sizeof(schemas_dir), "%s", optarg); break;
        case OPT_MEASURE:
            if (parse_number(optarg, 1, MAX_MEASURE, &measure) != 0) {
                fprintf(stderr,
                        PROG ": --measure: expected a whole number from 1 to %llu, got '%s'\n",
                        (unsigned long long)MAX_MEASURE, optarg);
                return 2;
            }
            break;
        case OPT_HISTORIES:
            if (parse_histories(optarg, histories, &history_count) != 0) {
                fprintf(stderr,
                        PROG ": --histories: expected up to %d whole numbers from %d to %llu, "
                             "separated by commas, got '%s'\n",
                        MAX_HISTORIES, MIN_HISTORY, (unsigned long long)MAX_HISTORY, optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, PROG ": option '%s' needs a value\n", argv[optind - 1]); return 2;
        default:
            fprintf(stderr, PROG ": unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    struct schema_set *schemas = NULL;
    char err[512];
    if (schema_set_load(schemas_dir, &schemas, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, PROG ": cannot load the schemas from %s: %s (see --schemas)\n", schemas_dir,
                err);
        return 1;
    }
    if (check_codes(schemas, err, sizeof(err)) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        schema_set_free(schemas);
        return 1;
    }

    printf("engine benchmark: %zu rules, %" PRIu64 " facts measured per history\n",
           SN_ARRAY_LEN(RULES), measure);
    printf("(rules written for windows of %dk facts; in B, where the windows hold more,\n"
           " min_reviews scaled by history/%dk, repeat_interval and resolve_after by %dk/history)\n",
           REFERENCE_HISTORY / 1000, REFERENCE_HISTORY / 1000, REFERENCE_HISTORY / 1000);
    struct result results[MAX_HISTORIES], held_results[MAX_HISTORIES];
    printf("\nA. history behind windows of a fixed size (%dk facts): what a fact costs as the\n"
           "   stored history grows (the facts before the windows must cost nothing)\n",
           REFERENCE_HISTORY / 1000);
    if (run_table(schemas, histories, history_count, REFERENCE_HISTORY, measure, results) != 0) {
        schema_set_free(schemas);
        return 1;
    }
    printf("\nB. windows holding the whole history (rules scaled to it): what a fact costs as the\n"
           "   windows grow; past the CPU caches each map probe is a memory access\n");
    if (run_table(schemas, histories, history_count, 0, measure, held_results) != 0) {
        schema_set_free(schemas);
        return 1;
    }
    printf("\nns/fact: the median of %d slices of the measured facts, in the median of %d rounds;\n"
           "RSS after warm-up minus before the engine, per fact held in a window (a fact counts\n"
           "once per window) and per distinct fact fed within the longest window\n",
           SLICES, ROUNDS);
    for (size_t k = 0; k < 2 * history_count; k++) {
        const struct result *r = k < history_count ? &results[k] : &held_results[k - history_count];
        char label[32];
        format_count(r->history, label, sizeof(label));
        if (k % history_count == 0) printf("%s:\n", k ? "B" : "A");
        double costs[SLICES];
        size_t n = slice_costs(r, costs);
        printf("%s: slices %.0f..%.0f ns/fact, mean %.0f; %zu groups, %zu active notices, %zu "
               "reviews tracked\n",
               label, n ? costs[0] : 0, n ? costs[n - 1] : 0,
               r->facts_measured ? (double)r->ns / (double)r->facts_measured : 0, r->groups,
               r->active_episodes, r->reviews_tracked);
        printf("%*s  revisions measured: %" PRIu64 " issued, %" PRIu64 " escalated, %" PRIu64
               " updated, %" PRIu64 " resolved (warm-up: %" PRIu64 ")\n",
               (int)strlen(label), "", r->measured.by_status[REVISION_ISSUED],
               r->measured.by_status[REVISION_ESCALATED], r->measured.by_status[REVISION_UPDATED],
               r->measured.by_status[REVISION_RESOLVED], r->warmup.total);
    }
    schema_set_free(schemas);
    return 0;
}
