/* sn-simulate: synthetic, realistic review.completed events for demos, load
 * tests and rule backtests. One structured-mode CloudEvent per line on stdout,
 * in finalized_at order, streamed: memory does not grow with --reviews.
 *
 * The same arguments give the same bytes on every machine: one xoshiro256**
 * generator seeded through splitmix64, integer arithmetic only (no floating
 * point, no rand(), no clock), and a fixed order of draws.
 *
 * Codes come from the vocabulary file. The C code only names the codes whose
 * weights it knows (the hint tables below); a code of the vocabulary that no
 * table names still appears, with a small default weight, and a named code
 * missing from the vocabulary is skipped, except the few the published
 * distribution depends on (see model_require()). */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sn.h"

#define PROG               "sn-simulate"
#define MAX_REVIEWS        1000000000ULL
#define MAX_JURISDICTIONS  10000
#define MIN_YEAR           1901 /* incident months go back 6 months: stay within 19xx/20xx */
#define MAX_YEAR           2099
#define TIMES_MAX          4096 /* reviews drawn and sorted at once within a day or an hour */
#define SPAN_MAX           3600 /* seconds in an hour */
#define SUMMARY_MAX        3900 /* bytes; the schema allows 4000 characters */
#define MAX_OPPORTUNITIES  8
#define NONE               SIZE_MAX
#define DEFAULT_VOCABULARY "schemas/vocabulary.v1.json"
/* where the package and the image put it, as the broker's schemas.dir does */
#define INSTALLED_VOCABULARY "/usr/share/sn-broker/schemas/vocabulary.v1.json"

/* The partnership's published figures this model reproduces: 711 reviews held
 * 1,841 improvement opportunities (~2.6 each); teamwork and coordination in
 * more than half of the reviews, most often with an external partner, law
 * enforcement first among them; economic support in more than a fifth,
 * more often after a sudden unexpected infant death. */
#define TEAMWORK_PCT       55 /* reviews with a teamwork_coordination opportunity */
#define TEAMWORK_TWICE_PCT 15 /* of those with 3+ opportunities: a second one */
#define ECONOMIC_SUID_PCT  45 /* reviews with economic support, cause suid */
#define ECONOMIC_OTHER_PCT 17 /* reviews with economic support, any other cause */
#define SEIPS_USUAL_PCT    60 /* a theme's SEIPS element is its usual one */
#define SUMMARY_PCT        90 /* opportunities that carry a free-text summary */
#define PRIOR_INVOLVED_PCT 62

/* 1..8 opportunities per review: mean 2.59 */
static const unsigned OPPORTUNITY_COUNT_WEIGHTS[MAX_OPPORTUNITIES] = {25, 32, 21, 11, 6, 3, 1, 1};
/* 0..5 family needs besides economic support */
static const unsigned NEED_COUNT_WEIGHTS[] = {15, 30, 28, 15, 8, 4};
/* incident month 1..6 months before the review was finalized */
static const unsigned MONTHS_BEFORE_WEIGHTS[] = {15, 25, 25, 15, 12, 8};
/* reviews are finalized in office hours, mostly (UTC hour of day) */
static const unsigned HOUR_WEIGHTS[24] = {1, 1,  1,  1,  1,  1, 2, 3, 10, 10, 10, 10,
                                          7, 10, 10, 10, 10, 6, 2, 2, 2,  1,  1,  1};

/* Enumerations of the review schema itself (not of the vocabulary). */
static const char *const AGE_BANDS[] = {"0-3", "4-7", "8-12", "13-17"};
static const unsigned AGE_BAND_WEIGHTS[] = {60, 15, 12, 13};
static const char *const INCIDENT_TYPES[] = {"fatality", "near_fatality", "serious_injury"};
static const unsigned INCIDENT_TYPE_WEIGHTS[] = {50, 35, 15};
enum seips { PERSON, TASKS, TOOLS, ORGANIZATION, INTERNAL, EXTERNAL, SEIPS_COUNT, SEIPS_ANY = -1 };
static const char *const SEIPS_DOMAINS[SEIPS_COUNT] = {"person",
                                                       "tasks",
                                                       "tools_technology",
                                                       "organization",
                                                       "internal_environment",
                                                       "external_environment"};
static const unsigned SEIPS_WEIGHTS[SEIPS_COUNT] = {16, 24, 12, 28, 8, 12};
static const char *const PRIORITIES[] = {"low", "medium", "high"};
static const unsigned PRIORITY_WEIGHTS[] = {22, 50, 28};

/* Hint tables: weights for codes the model knows by name */

/* clang-format off: tables read best aligned by hand */

struct code_weight {
    const char *code;
    unsigned weight;
};

enum partner_profile { PARTNERS_COORDINATION, PARTNERS_ECONOMIC, PARTNERS_SERVICES, PROFILE_COUNT };

static const struct code_weight COORDINATION_PARTNERS[] = {
    {"law_enforcement", 30},
    {"medical", 15},
    {"behavioral_health", 10},
    {"judiciary", 8},
    {"education", 7},
    {"substance_use_treatment", 6},
    {"public_health", 6},
    {"domestic_violence_services", 5},
    {"housing", 3},
    {"economic_assistance", 3},
    {"tribal_services", 3},
    {"community_organization", 3},
};
static const struct code_weight ECONOMIC_PARTNERS[] = {
    {"economic_assistance", 40}, {"housing", 22}, {"community_organization", 15},
    {"public_health", 13},       {"medical", 5},  {"tribal_services", 5},
};
static const struct code_weight SERVICES_PARTNERS[] = {
    {"behavioral_health", 25}, {"substance_use_treatment", 25},
    {"housing", 12},           {"public_health", 12},
    {"medical", 10},           {"domestic_violence_services", 10},
    {"tribal_services", 3},    {"community_organization", 3},
};
static const struct {
    const struct code_weight *list;
    size_t len;
    unsigned unlisted_weight; /* for partners of the vocabulary this table does not name */
} PARTNER_PROFILES[PROFILE_COUNT] = {
    {COORDINATION_PARTNERS, SN_ARRAY_LEN(COORDINATION_PARTNERS), 2},
    {ECONOMIC_PARTNERS, SN_ARRAY_LEN(ECONOMIC_PARTNERS), 0},
    {SERVICES_PARTNERS, SN_ARRAY_LEN(SERVICES_PARTNERS), 0},
};

struct theme_hint {
    const char *code;
    unsigned weight;       /* among the themes drawn freely (the two forced ones: 0) */
    unsigned partner_pct;  /* its opportunities that name a partner agency */
    unsigned subtheme_pct; /* its opportunities that have a subtheme */
    enum seips seips;      /* the SEIPS element it usually concerns */
    enum partner_profile partners;
    const char *subthemes[4];
};

static const struct theme_hint THEME_HINTS[] = {
    {"teamwork_coordination",
     0,
     78,
     50,
     ORGANIZATION,
     PARTNERS_COORDINATION,
     {"joint_investigation", "cross_system_communication", "handoff_transition",
      "case_consultation"}},
    {"economic_support",
     0,
     35,
     55,
     EXTERNAL,
     PARTNERS_ECONOMIC,
     {"concrete_supports", "benefits_enrollment", "safe_sleep_resources"}},
    {"information_sharing",
     14,
     55,
     45,
     TOOLS,
     PARTNERS_COORDINATION,
     {"records_access", "history_review", "cross_system_communication"}},
    {"assessment", 14, 10, 40, TASKS, PARTNERS_COORDINATION, {"tool_fidelity", "history_review"}},
    {"safety_planning", 11, 15, 40, TASKS, PARTNERS_SERVICES, {"plan_monitoring"}},
    {"service_availability",
     10,
     45,
     45,
     EXTERNAL,
     PARTNERS_SERVICES,
     {"waitlist", "transportation"}},
    {"workload", 8, 0, 35, ORGANIZATION, PARTNERS_COORDINATION, {"turnover"}},
    {"supervision",
     9,
     0,
     35,
     ORGANIZATION,
     PARTNERS_COORDINATION,
     {"reflective_supervision", "case_consultation"}},
    {"training", 7, 5, 0, PERSON, PARTNERS_COORDINATION, {NULL}},
    {"policy", 7, 10, 0, ORGANIZATION, PARTNERS_COORDINATION, {NULL}},
    {"technology", 5, 5, 30, TOOLS, PARTNERS_COORDINATION, {"records_access"}},
    {"family_engagement", 9, 5, 35, PERSON, PARTNERS_SERVICES, {"father_engagement"}},
    {"cultural_responsiveness", 3, 20, 40, PERSON, PARTNERS_SERVICES, {"language_access"}},
    {"intake_screening", 7, 10, 35, TASKS, PARTNERS_COORDINATION, {"history_review"}},
    {"caseworker_safety", 2, 15, 0, INTERNAL, PARTNERS_COORDINATION, {NULL}},
};
static const struct theme_hint UNLISTED_THEME = {NULL,  4, 15, 0, SEIPS_ANY, PARTNERS_COORDINATION,
                                                 {NULL}};

/* Cause by age band 0-3, 4-7, 8-12, 13-17: SUID is an infant's death. */
static const struct {
    const char *code;
    unsigned by_band[4];
} CAUSE_HINTS[] = {
    {"suid", {35, 0, 0, 0}},
    {"abusive_head_trauma", {18, 2, 0, 0}},
    {"other_physical_abuse", {8, 20, 18, 12}},
    {"neglect_supervision", {12, 20, 14, 6}},
    {"neglect_medical", {4, 6, 6, 5}},
    {"drowning", {6, 14, 8, 3}},
    {"firearm", {1, 6, 12, 18}},
    {"ingestion_poisoning", {8, 10, 10, 15}},
    {"vehicle", {2, 8, 10, 10}},
    {"fire", {2, 8, 6, 2}},
    {"suicide", {0, 0, 6, 22}},
    {"other", {2, 4, 5, 4}},
    {"undetermined", {4, 4, 5, 3}},
};
#define UNLISTED_CAUSE_WEIGHT 1

static const struct code_weight NEED_HINTS[] = {
    {"economic_support", 0}, /* forced by the review's economic-support draw */
    {"housing", 14},         {"substance_use_treatment", 16},
    {"mental_health", 18},   {"domestic_violence_support", 10},
    {"child_care", 8},       {"parenting_support", 14},
    {"safe_sleep", 3},       {"medical_care", 6},
    {"transportation", 5},   {"food_security", 6},
    {"legal_assistance", 3},
};
#define UNLISTED_NEED_WEIGHT 3

/* A cause makes one need likely. */
static const struct {
    const char *cause, *need;
    unsigned pct;
} NEED_BY_CAUSE[] = {
    {"suid", "safe_sleep", 60},
    {"ingestion_poisoning", "substance_use_treatment", 50},
    {"suicide", "mental_health", 70},
    {"drowning", "child_care", 30},
    {"neglect_supervision", "parenting_support", 30},
};

/* Word lists for the free-text summaries */

static const char *const OPENERS[] = {
    "During the initial assessment",
    "At the time of the second report",
    "In the weeks before the incident",
    "While the case was open for in-home services",
    "After the emergency department visit",
    "At the transfer from investigations to ongoing services",
    "During the last home visit",
    "Over the life of the case",
    "When the family moved between counties",
    "At the first team decision meeting",
    "Shortly after the birth of the youngest child",
    "When the caregiver missed two scheduled appointments",
};
static const char *const ACTORS[] = {
    "the assigned caseworker", "the investigator",
    "the unit supervisor",     "the intake screener",
    "the ongoing worker",      "the after-hours worker",
    "the case team",           "the family's service provider",
};
static const char *const GAPS[] = {
    "was not aware of",  "did not follow up on", "did not document", "did not act on",
    "did not ask about", "could not verify",     "did not revisit",  "did not weigh",
};
static const char *const OBJECTS[] = {
    "the family's prior reports",
    "the caregiver's recent treatment history",
    "the outcome of the medical examination",
    "the status of the safety plan",
    "the family's housing situation",
    "the father's involvement with the children",
    "concerns raised by a relative",
    "the infant's sleep arrangements",
    "the caregiver's loss of income",
    "a pending referral for services",
    "the results of the last drug screen",
    "the other adults living in the home",
};
static const char *const PARTNER_OBJECTS[] = {
    "information held by ", "a referral made by ",      "concerns reported by ",
    "the findings of ",     "a case plan agreed with ",
};
static const char *const THEME_LEADS[] = {
    "The review team placed this under",
    "The team identified a gap in",
    "Reviewers connected this to",
    "The finding concerns",
};
static const char *const FACTORS[] = {
    "high caseloads",
    "unclear policy",
    "a recent staff vacancy",
    "competing priorities",
    "limited after-hours coverage",
    "an outdated case management system",
    "the lack of a shared protocol",
    "long travel distances in a rural area",
    "language barriers",
    "the lack of a formal consultation process",
    "frequent changes of worker",
    "a waitlist for the recommended service",
};
static const char *const RECOMMENDATION_LEADS[] = {
    "The team recommends",
    "The agency plans",
    "Reviewers proposed",
    "The partnership suggests",
};
static const char *const RECOMMENDATIONS[] = {
    "a written protocol for joint response",
    "refresher training for intake staff",
    "a standing multidisciplinary case consultation",
    "a checklist for case transfers",
    "caseload standards for the unit",
    "regular review of safety plans by supervisors",
    "a flexible fund for concrete supports",
    "a shared contact list for after-hours decisions",
    "coaching on engaging fathers and paternal relatives",
    "a prompt in the case management system for prior history",
};
static const char *const PARTNER_RECOMMENDATIONS[] = {
    "a joint protocol with ",
    "a named liaison at ",
    "quarterly case reviews with ",
    "direct records access for workers at ",
};

/* Member jurisdictions */

/* Pools in the order they are taken; a review mix of N takes states,
 * county-administered systems and tribal nations in the pattern below.
 * Beyond the pools: US-<state>-C<nnn>, FIPS-style county numbers. */
static const char *const STATES[] = {
    "US-TN", "US-AZ", "US-CO", "US-GA", "US-IN", "US-KS", "US-KY", "US-ME", "US-MD",
    "US-NH", "US-NJ", "US-NM", "US-OK", "US-OR", "US-SC", "US-UT", "US-VT", "US-WV",
    "US-AL", "US-AK", "US-AR", "US-CA", "US-CT", "US-DE", "US-DC", "US-FL", "US-HI",
    "US-ID", "US-IL", "US-IA", "US-LA", "US-MA", "US-MI", "US-MN", "US-MS", "US-MO",
    "US-MT", "US-NE", "US-NV", "US-NY", "US-NC", "US-ND", "US-OH", "US-PA", "US-RI",
    "US-SD", "US-TX", "US-VA", "US-WA", "US-WI", "US-WY",
};
static const char *const COUNTIES[] = {
    "US-CA-LAC",        "US-CO-DENVER",      "US-MN-HENNEPIN",   "US-NY-NYC",
    "US-OH-CUYAHOGA",   "US-PA-ALLEGHENY",   "US-NC-WAKE",       "US-VA-FAIRFAX",
    "US-WI-MILWAUKEE",  "US-CA-SANDIEGO",    "US-CO-ELPASO",     "US-PA-PHILADELPHIA",
    "US-OH-FRANKLIN",   "US-NC-MECKLENBURG", "US-MN-RAMSEY",     "US-CA-ORANGE",
    "US-NY-ERIE",       "US-CA-RIVERSIDE",   "US-OH-HAMILTON",   "US-CO-ADAMS",
    "US-TX-HARRIS",     "US-IL-COOK",        "US-AZ-MARICOPA",   "US-CA-FRESNO",
    "US-CA-SACRAMENTO", "US-CA-ALAMEDA",     "US-CA-SANTACLARA", "US-CA-KERN",
    "US-CO-ARAPAHOE",   "US-CO-JEFFERSON",   "US-MN-DAKOTA",     "US-NY-MONROE",
    "US-NY-ONONDAGA",   "US-NY-WESTCHESTER", "US-OH-SUMMIT",     "US-OH-MONTGOMERY",
    "US-OH-LUCAS",      "US-PA-MONTGOMERY",  "US-PA-DAUPHIN",    "US-PA-LANCASTER",
    "US-NC-GUILFORD",   "US-NC-FORSYTH",     "US-NC-DURHAM",     "US-VA-RICHMOND",
    "US-VA-NORFOLK",    "US-VA-LOUDOUN",     "US-WI-DANE",       "US-WI-BROWN",
    "US-ND-CASS",       "US-ND-BURLEIGH",    "US-MD-BALTIMORE",  "US-MD-PRGEORGES",
    "US-MD-MONTGOMERY", "US-TX-DALLAS",      "US-TX-BEXAR",      "US-TX-TRAVIS",
    "US-TX-TARRANT",    "US-FL-MIAMIDADE",   "US-FL-BROWARD",    "US-FL-HILLSBOROUGH",
    "US-FL-ORANGE",     "US-GA-FULTON",      "US-GA-DEKALB",     "US-AZ-PIMA",
    "US-NV-CLARK",      "US-NV-WASHOE",      "US-WA-KING",       "US-WA-PIERCE",
    "US-WA-SPOKANE",    "US-OR-MULTNOMAH",   "US-MI-WAYNE",      "US-MI-KENT",
    "US-MI-OAKLAND",    "US-IN-MARION",      "US-IN-LAKE",       "US-MO-STLOUIS",
    "US-MO-JACKSON",    "US-TN-SHELBY",      "US-TN-DAVIDSON",   "US-TN-KNOX",
    "US-KY-JEFFERSON",  "US-LA-ORLEANS",     "US-NM-BERNALILLO", "US-UT-SALTLAKE",
    "US-NE-DOUGLAS",    "US-IA-POLK",        "US-KS-SEDGWICK",   "US-OK-TULSA",
    "US-AL-JEFFERSON",  "US-SC-CHARLESTON",  "US-NJ-ESSEX",      "US-CT-HARTFORD",
    "US-MA-SUFFOLK",
};
static const char *const TRIBES[] = {
    "US-AZ-NAVAJO",      "US-OK-CHEROKEE",    "US-SD-OGLALA",    "US-WA-YAKAMA",
    "US-MN-REDLAKE",     "US-NC-EBCI",        "US-MT-BLACKFEET", "US-OK-CHOCTAW",
    "US-AZ-HOPI",        "US-ND-STANDINGRCK", "US-NM-ZUNI",      "US-WI-ONEIDA",
    "US-AK-TCC",         "US-AZ-TOHONOODHAM", "US-OK-CHICKASAW", "US-OK-MUSCOGEE",
    "US-SD-ROSEBUD",     "US-SD-CHEYENNERIV", "US-MT-CROW",      "US-MT-NCHEYENNE",
    "US-NM-JICARILLA",   "US-NM-MESCALERO",   "US-WA-TULALIP",   "US-WA-COLVILLE",
    "US-MN-LEECHLAKE",   "US-MN-WHITEEARTH",  "US-WI-MENOMINEE", "US-WI-HOCHUNK",
    "US-MI-SAULTTRIBE",  "US-NY-SENECA",      "US-ME-PENOBSCOT", "US-AK-CITC",
    "US-AK-AVCP",        "US-CA-YUROK",       "US-CA-HOOPA",     "US-ID-NEZPERCE",
    "US-NV-PYRAMIDLAKE", "US-OR-WARMSPRINGS", "US-WY-WINDRIVER", "US-CO-SOUTHERNUTE",
    "US-AZ-GILARIVER",   "US-AZ-SANCARLOS",   "US-ND-TURTLEMTN", "US-OK-OSAGE",
};
enum jurisdiction_kind { STATE, COUNTY, TRIBE, KIND_COUNT };
/* Of every 12 jurisdictions: 6 states, 4 counties, 2 tribes. */
static const enum jurisdiction_kind MIX[12] = {STATE, COUNTY, STATE,  TRIBE, STATE, COUNTY,
                                               STATE, STATE,  COUNTY, TRIBE, STATE, COUNTY};
/* Larger systems finalize more reviews. */
static const unsigned KIND_WEIGHT[KIND_COUNT] = {3, 2, 1};
static const char *const REVIEW_ID_PREFIXES[] = {"SSIT", "CIR", "CFR", "SIR", "CIRT"};

/* clang-format on */

/* The generator */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (size_t i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna) */
static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    assert(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = rng_next(r);
    } while (x >= limit);
    return x % n;
}

static int rng_percent(struct rng *r, unsigned pct)
{
    return rng_below(r, 100) < pct;
}

/* An index drawn with the given weights; uniform when they are all zero. */
static size_t pick_weighted(struct rng *r, const unsigned *weights, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    if (total == 0) return (size_t)rng_below(r, n);
    uint64_t x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i]) return i;
        x -= weights[i];
    }
    return n - 1;
}

#define PICK(r, list) ((list)[rng_below((r), SN_ARRAY_LEN(list))])

static void shuffle(struct rng *r, size_t *items, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        size_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

/* Vocabulary */

enum set_id { SET_THEME, SET_SUBTHEME, SET_PARTNER, SET_CAUSE, SET_NEED, SET_COUNT };
static const char *const SET_NAMES[SET_COUNT] = {"theme", "subtheme", "partner", "cause",
                                                 "family_need"};

struct term {
    const char *code; /* points into the vocabulary's JSON */
    char *phrase;     /* label as it reads inside a sentence ("law enforcement") */
    char *definition; /* a sentence ending in a period, first letter lowered; may be "" */
};

struct term_set {
    struct term *terms;
    size_t count;
};

struct vocab {
    json_t *root;
    struct term_set sets[SET_COUNT];
};

/* "Law enforcement" -> "law enforcement"; keeps "TANF and SNAP". */
static char *lower_first(const char *text)
{
    char *s = xstrdup(text);
    if (s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z'))
        s[0] = (char)(s[0] - 'A' + 'a');
    return s;
}

static char *sentence_of(const char *text)
{
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '.'))
        len--;
    if (len == 0) return xstrdup("");
    char *s = xmalloc(len + 2);
    memcpy(s, text, len);
    s[len] = '.';
    s[len + 1] = '\0';
    char *lowered = lower_first(s);
    free(s);
    return lowered;
}

static void vocab_free(struct vocab *v)
{
    for (size_t i = 0; i < SET_COUNT; i++) {
        for (size_t j = 0; j < v->sets[i].count; j++) {
            free(v->sets[i].terms[j].phrase);
            free(v->sets[i].terms[j].definition);
        }
        free(v->sets[i].terms);
    }
    json_decref(v->root);
    memset(v, 0, sizeof(*v));
}

/* Loads sets.<name>.terms[].{code,label,definition}; on error fills err. */
static enum sn_err vocab_load(const char *path, struct vocab *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    json_error_t jerr;
    v->root = json_load_file(path, 0, &jerr);
    if (!v->root) {
        if (jerr.line > 0)
            snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        else
            snprintf(err, errlen, "%s", jerr.text); /* "unable to open PATH: ..." */
        return SN_ERR_CONF;
    }
    json_t *sets = json_object_get(v->root, "sets");
    if (!json_is_object(sets)) {
        snprintf(err, errlen, "%s: no \"sets\" object: not a vocabulary file", path);
        return SN_ERR_CONF;
    }
    for (size_t i = 0; i < SET_COUNT; i++) {
        json_t *terms = json_object_get(json_object_get(sets, SET_NAMES[i]), "terms");
        if (!json_is_array(terms) || json_array_size(terms) == 0) {
            snprintf(err, errlen, "%s: set \"%s\" is missing or has no terms", path, SET_NAMES[i]);
            return SN_ERR_CONF;
        }
        struct term_set *set = &v->sets[i];
        set->terms = xcalloc(json_array_size(terms), sizeof(*set->terms));
        size_t j;
        json_t *term;
        json_array_foreach(terms, j, term)
        {
            const char *code = json_string_value(json_object_get(term, "code"));
            const char *label = json_string_value(json_object_get(term, "label"));
            const char *definition = json_string_value(json_object_get(term, "definition"));
            if (!code || !code[0]) {
                snprintf(err, errlen, "%s: set \"%s\", term %zu: no \"code\" string", path,
                         SET_NAMES[i], j);
                return SN_ERR_CONF;
            }
            struct term *t = &set->terms[set->count++];
            t->code = code;
            t->phrase = lower_first(label && label[0] ? label : code);
            t->definition = sentence_of(definition ? definition : "");
        }
    }
    return SN_OK;
}

static size_t vocab_find(const struct vocab *v, enum set_id set, const char *code)
{
    for (size_t i = 0; i < v->sets[set].count; i++)
        if (strcmp(v->sets[set].terms[i].code, code) == 0) return i;
    return NONE;
}

/* The model: the hint tables resolved against the vocabulary */

struct theme_model {
    unsigned weight, partner_pct, subtheme_pct;
    enum seips seips;
    const unsigned *partner_weights;
    size_t subthemes[SN_ARRAY_LEN(THEME_HINTS[0].subthemes)];
    size_t subtheme_count;
};

struct model {
    const struct vocab *v;
    size_t teamwork, economic_theme, economic_need, law_enforcement, suid, joint_investigation;
    struct theme_model *themes;
    unsigned *theme_weights; /* themes[i].weight, as drawn from */
    unsigned *partner_weights[PROFILE_COUNT];
    unsigned *cause_weights[SN_ARRAY_LEN(AGE_BANDS)];
    unsigned *need_weights;
    size_t *need_by_cause; /* per cause: the need it makes likely, or NONE */
    unsigned *need_by_cause_pct;
};

/* The codes the published distribution is about must exist. */
static enum sn_err model_require(struct model *m, const char *path, char *err, size_t errlen)
{
    const struct {
        enum set_id set;
        const char *code;
        size_t *index;
    } required[] = {
        {SET_THEME, "teamwork_coordination", &m->teamwork},
        {SET_THEME, "economic_support", &m->economic_theme},
        {SET_NEED, "economic_support", &m->economic_need},
        {SET_PARTNER, "law_enforcement", &m->law_enforcement},
        {SET_CAUSE, "suid", &m->suid},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(required); i++) {
        *required[i].index = vocab_find(m->v, required[i].set, required[i].code);
        if (*required[i].index == NONE) {
            snprintf(err, errlen,
                     "%s: set \"%s\" has no code \"%s\", which the simulated distribution needs",
                     path, SET_NAMES[required[i].set], required[i].code);
            return SN_ERR_CONF;
        }
    }
    m->joint_investigation = vocab_find(m->v, SET_SUBTHEME, "joint_investigation");
    return SN_OK;
}

static void model_free(struct model *m)
{
    free(m->themes);
    free(m->theme_weights);
    for (size_t i = 0; i < PROFILE_COUNT; i++)
        free(m->partner_weights[i]);
    for (size_t i = 0; i < SN_ARRAY_LEN(AGE_BANDS); i++)
        free(m->cause_weights[i]);
    free(m->need_weights);
    free(m->need_by_cause);
    free(m->need_by_cause_pct);
    memset(m, 0, sizeof(*m));
}

static enum sn_err model_init(struct model *m, const struct vocab *v, const char *path, char *err,
                              size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->v = v;
    if (model_require(m, path, err, errlen) != SN_OK) return SN_ERR_CONF;

    const struct term_set *partners = &v->sets[SET_PARTNER];
    for (size_t p = 0; p < PROFILE_COUNT; p++) {
        m->partner_weights[p] = xcalloc(partners->count, sizeof(unsigned));
        for (size_t i = 0; i < partners->count; i++) {
            m->partner_weights[p][i] = PARTNER_PROFILES[p].unlisted_weight;
            for (size_t k = 0; k < PARTNER_PROFILES[p].len; k++)
                if (strcmp(PARTNER_PROFILES[p].list[k].code, partners->terms[i].code) == 0)
                    m->partner_weights[p][i] = PARTNER_PROFILES[p].list[k].weight;
        }
    }

    const struct term_set *themes = &v->sets[SET_THEME];
    m->themes = xcalloc(themes->count, sizeof(*m->themes));
    m->theme_weights = xcalloc(themes->count, sizeof(unsigned));
    for (size_t i = 0; i < themes->count; i++) {
        const struct theme_hint *hint = &UNLISTED_THEME;
        for (size_t k = 0; k < SN_ARRAY_LEN(THEME_HINTS); k++)
            if (strcmp(THEME_HINTS[k].code, themes->terms[i].code) == 0) hint = &THEME_HINTS[k];
        struct theme_model *t = &m->themes[i];
        /* the two themes of the published figures are placed by the review draw */
        t->weight = i == m->teamwork || i == m->economic_theme ? 0 : hint->weight;
        m->theme_weights[i] = t->weight;
        t->partner_pct = hint->partner_pct;
        t->subtheme_pct = hint->subtheme_pct;
        t->seips = hint->seips;
        t->partner_weights = m->partner_weights[hint->partners];
        for (size_t k = 0; k < SN_ARRAY_LEN(hint->subthemes) && hint->subthemes[k]; k++) {
            size_t sub = vocab_find(v, SET_SUBTHEME, hint->subthemes[k]);
            if (sub != NONE) t->subthemes[t->subtheme_count++] = sub;
        }
    }

    const struct term_set *causes = &v->sets[SET_CAUSE];
    for (size_t b = 0; b < SN_ARRAY_LEN(AGE_BANDS); b++) {
        m->cause_weights[b] = xcalloc(causes->count, sizeof(unsigned));
        for (size_t i = 0; i < causes->count; i++) {
            m->cause_weights[b][i] = UNLISTED_CAUSE_WEIGHT;
            for (size_t k = 0; k < SN_ARRAY_LEN(CAUSE_HINTS); k++)
                if (strcmp(CAUSE_HINTS[k].code, causes->terms[i].code) == 0)
                    m->cause_weights[b][i] = CAUSE_HINTS[k].by_band[b];
        }
    }

    const struct term_set *needs = &v->sets[SET_NEED];
    m->need_weights = xcalloc(needs->count, sizeof(unsigned));
    for (size_t i = 0; i < needs->count; i++) {
        m->need_weights[i] = UNLISTED_NEED_WEIGHT;
        for (size_t k = 0; k < SN_ARRAY_LEN(NEED_HINTS); k++)
            if (strcmp(NEED_HINTS[k].code, needs->terms[i].code) == 0)
                m->need_weights[i] = NEED_HINTS[k].weight;
    }
    m->need_weights[m->economic_need] = 0;

    m->need_by_cause = xcalloc(causes->count, sizeof(size_t));
    m->need_by_cause_pct = xcalloc(causes->count, sizeof(unsigned));
    for (size_t i = 0; i < causes->count; i++) {
        m->need_by_cause[i] = NONE;
        for (size_t k = 0; k < SN_ARRAY_LEN(NEED_BY_CAUSE); k++) {
            size_t need = vocab_find(v, SET_NEED, NEED_BY_CAUSE[k].need);
            if (strcmp(NEED_BY_CAUSE[k].cause, causes->terms[i].code) == 0 && need != NONE &&
                need != m->economic_need) {
                m->need_by_cause[i] = need;
                m->need_by_cause_pct[i] = NEED_BY_CAUSE[k].pct;
            }
        }
    }
    return SN_OK;
}

/* Calendar (proleptic Gregorian, days since 1970-01-01; H. Hinnant) */

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD" -> days since the epoch; -1 if not a real date in range. */
static int parse_date(const char *s, int64_t *day)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < MIN_YEAR || y > MAX_YEAR || m < 1 || m > 12 || d < 1) return -1;
    if (d > month_days[m - 1] + (m == 2 && is_leap(y))) return -1;
    *day = days_from_civil(y, m, d);
    return 0;
}

/* Jurisdictions */

struct jurisdiction {
    char code[24];
    unsigned weight;
    const char *review_prefix;
    int year;             /* of the last review id handed out */
    unsigned next_number; /* within that year */
};

static void jurisdictions_init(struct jurisdiction *js, size_t n)
{
    const char *const *pools[KIND_COUNT] = {STATES, COUNTIES, TRIBES};
    const size_t pool_len[KIND_COUNT] = {SN_ARRAY_LEN(STATES), SN_ARRAY_LEN(COUNTIES),
                                         SN_ARRAY_LEN(TRIBES)};
    size_t taken[KIND_COUNT] = {0, 0, 0};
    size_t generated = 0;
    for (size_t i = 0; i < n; i++) {
        struct jurisdiction *j = &js[i];
        enum jurisdiction_kind kind = MIX[i % SN_ARRAY_LEN(MIX)];
        size_t tries = 0;
        while (taken[kind] == pool_len[kind] && tries++ < KIND_COUNT)
            kind = (enum jurisdiction_kind)((kind + 1) % KIND_COUNT);
        if (taken[kind] < pool_len[kind]) {
            snprintf(j->code, sizeof(j->code), "%s", pools[kind][taken[kind]++]);
        } else {
            /* pools used up: numbered counties, state by state */
            kind = COUNTY;
            snprintf(j->code, sizeof(j->code), "%s-C%03zu",
                     STATES[generated % SN_ARRAY_LEN(STATES)],
                     generated / SN_ARRAY_LEN(STATES) + 1);
            generated++;
        }
        j->weight = KIND_WEIGHT[kind];
        uint32_t hash = 2166136261u; /* FNV-1a: the prefix depends on the code, not the seed */
        for (const char *c = j->code; *c; c++)
            hash = (hash ^ (uint8_t)*c) * 16777619u;
        j->review_prefix = REVIEW_ID_PREFIXES[hash % SN_ARRAY_LEN(REVIEW_ID_PREFIXES)];
    }
}

/* JSON building: jansson fails only on out-of-memory or on bad UTF-8, which
 * our strings cannot have. */

static json_t *checked(json_t *value)
{
    if (!value) {
        fprintf(stderr, PROG ": cannot build JSON (out of memory?)\n");
        abort();
    }
    return value;
}

static void put(json_t *object, const char *key, json_t *value)
{
    if (json_object_set_new(object, key, checked(value)) != 0) checked(NULL);
}

static void put_string(json_t *object, const char *key, const char *value)
{
    put(object, key, json_string(value));
}

static void append(json_t *array, json_t *value)
{
    if (json_array_append_new(array, checked(value)) != 0) checked(NULL);
}

/* Summaries */

struct text {
    char buf[SUMMARY_MAX + 1];
    size_t len;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    size_t room = sizeof(t->buf) - t->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < room) {
        t->len += (size_t)n;
        return;
    }
    /* cut, at a UTF-8 character boundary (a long custom definition) */
    t->len = sizeof(t->buf) - 1;
    while (t->len > 0 && ((uint8_t)t->buf[t->len] & 0xC0) == 0x80)
        t->len--;
    t->buf[t->len] = '\0';
}

static void summary_write(struct rng *r, const struct term *theme, const struct term *partner,
                          struct text *t)
{
    t->len = 0;
    t->buf[0] = '\0';
    const char *opener = PICK(r, OPENERS), *actor = PICK(r, ACTORS), *gap = PICK(r, GAPS);
    if (partner && rng_percent(r, 60))
        text_add(t, "%s, %s %s %s%s.", opener, actor, gap, PICK(r, PARTNER_OBJECTS),
                 partner->phrase);
    else
        text_add(t, "%s, %s %s %s.", opener, actor, gap, PICK(r, OBJECTS));
    const char *lead = PICK(r, THEME_LEADS);
    if (theme->definition[0])
        text_add(t, " %s %s: %s", lead, theme->phrase, theme->definition);
    else
        text_add(t, " %s %s.", lead, theme->phrase);
    if (rng_percent(r, 70)) {
        size_t a = (size_t)rng_below(r, SN_ARRAY_LEN(FACTORS));
        size_t b =
            (a + 1 + (size_t)rng_below(r, SN_ARRAY_LEN(FACTORS) - 1)) % SN_ARRAY_LEN(FACTORS);
        text_add(t, " Contributing factors included %s and %s.", FACTORS[a], FACTORS[b]);
    }
    if (rng_percent(r, 60)) {
        const char *rlead = PICK(r, RECOMMENDATION_LEADS);
        if (partner && rng_percent(r, 50))
            text_add(t, " %s %s%s.", rlead, PICK(r, PARTNER_RECOMMENDATIONS), partner->phrase);
        else
            text_add(t, " %s %s.", rlead, PICK(r, RECOMMENDATIONS));
    }
}

/* One review */

struct sim {
    struct rng rng;
    struct model model;
    struct jurisdiction *jurisdictions;
    size_t jurisdiction_count;
    size_t *bag; /* a shuffled round of jurisdictions, each repeated by its weight */
    size_t bag_len, bag_pos;
    uint64_t seed;
    uint64_t emitted;
    FILE *out;
    uint32_t times[TIMES_MAX];
    uint64_t per_second[SPAN_MAX];
    struct text summary;
    unsigned *scratch_weights; /* a copy to draw without replacement */
    size_t scratch_len;
};

static size_t next_jurisdiction(struct sim *s)
{
    if (s->bag_pos == s->bag_len) {
        shuffle(&s->rng, s->bag, s->bag_len);
        s->bag_pos = 0;
    }
    return s->bag[s->bag_pos++];
}

/* Draws up to n distinct indexes with the given weights, never one of weight
 * zero nor the index except. */
static size_t draw_distinct(struct sim *s, const unsigned *weights, size_t count, size_t except,
                            size_t *out, size_t n)
{
    memcpy(s->scratch_weights, weights, count * sizeof(unsigned));
    if (except != NONE) s->scratch_weights[except] = 0;
    size_t got = 0;
    while (got < n) {
        uint64_t total = 0;
        for (size_t i = 0; i < count; i++)
            total += s->scratch_weights[i];
        if (total == 0) break;
        size_t i = pick_weighted(&s->rng, s->scratch_weights, count);
        s->scratch_weights[i] = 0;
        out[got++] = i;
    }
    return got;
}

static json_t *opportunity_new(struct sim *s, size_t theme)
{
    const struct vocab *v = s->model.v;
    const struct theme_model *tm = &s->model.themes[theme];
    json_t *io = checked(json_object());
    put_string(io, "theme", v->sets[SET_THEME].terms[theme].code);

    size_t subtheme = NONE, partner = NONE;
    if (tm->subtheme_count > 0 && rng_percent(&s->rng, tm->subtheme_pct)) {
        subtheme = tm->subthemes[rng_below(&s->rng, tm->subtheme_count)];
        put_string(io, "subtheme", v->sets[SET_SUBTHEME].terms[subtheme].code);
    }
    if (subtheme != NONE && subtheme == s->model.joint_investigation)
        partner = s->model.law_enforcement;
    else if (rng_percent(&s->rng, tm->partner_pct))
        partner = pick_weighted(&s->rng, tm->partner_weights, v->sets[SET_PARTNER].count);
    if (partner != NONE) put_string(io, "partner", v->sets[SET_PARTNER].terms[partner].code);

    size_t seips = tm->seips != SEIPS_ANY && rng_percent(&s->rng, SEIPS_USUAL_PCT)
                       ? (size_t)tm->seips
                       : pick_weighted(&s->rng, SEIPS_WEIGHTS, SEIPS_COUNT);
    put_string(io, "seips_domain", SEIPS_DOMAINS[seips]);
    put_string(io, "priority",
               PRIORITIES[pick_weighted(&s->rng, PRIORITY_WEIGHTS, SN_ARRAY_LEN(PRIORITIES))]);
    if (rng_percent(&s->rng, SUMMARY_PCT)) {
        summary_write(&s->rng, &v->sets[SET_THEME].terms[theme],
                      partner != NONE ? &v->sets[SET_PARTNER].terms[partner] : NULL, &s->summary);
        put_string(io, "summary", s->summary.buf);
    }
    return io;
}

/* The themes of a review's opportunities; returns how many. */
static size_t review_themes(struct sim *s, int economic_theme, size_t *themes)
{
    const struct model *m = &s->model;
    size_t n = 1 + pick_weighted(&s->rng, OPPORTUNITY_COUNT_WEIGHTS, MAX_OPPORTUNITIES);
    size_t got = 0;
    if (rng_percent(&s->rng, TEAMWORK_PCT)) {
        themes[got++] = m->teamwork;
        if (n >= 3 && rng_percent(&s->rng, TEAMWORK_TWICE_PCT)) themes[got++] = m->teamwork;
    }
    if (economic_theme && got < n) themes[got++] = m->economic_theme;
    const struct term_set *all = &m->v->sets[SET_THEME];
    got += draw_distinct(s, m->theme_weights, all->count, NONE, themes + got, n - got);
    /* a vocabulary with too few other themes: repeat them */
    while (got < n) {
        size_t i = (size_t)rng_below(&s->rng, all->count);
        if (i != m->teamwork && i != m->economic_theme)
            themes[got++] = i;
        else if (all->count <= 2)
            themes[got++] = m->teamwork;
    }
    shuffle(&s->rng, themes, got);
    return got;
}

static json_t *family_needs_new(struct sim *s, size_t cause, int economic_need)
{
    const struct model *m = &s->model;
    size_t count = m->v->sets[SET_NEED].count;
    size_t needs[SN_ARRAY_LEN(NEED_COUNT_WEIGHTS) + 2];
    size_t got = 0;
    if (economic_need) needs[got++] = m->economic_need;
    size_t likely = m->need_by_cause[cause];
    if (likely != NONE && rng_percent(&s->rng, m->need_by_cause_pct[cause]))
        needs[got++] = likely;
    else
        likely = NONE;
    size_t more = pick_weighted(&s->rng, NEED_COUNT_WEIGHTS, SN_ARRAY_LEN(NEED_COUNT_WEIGHTS));
    got += draw_distinct(s, m->need_weights, count, likely, needs + got, more);
    shuffle(&s->rng, needs, got);
    json_t *array = checked(json_array());
    for (size_t i = 0; i < got; i++)
        append(array, json_string(m->v->sets[SET_NEED].terms[needs[i]].code));
    return array;
}

static json_t *review_new(struct sim *s, const struct jurisdiction *j, const char *review_id,
                          const char *finalized_at, int year, int month)
{
    const struct model *m = &s->model;
    const struct vocab *v = m->v;
    struct rng *r = &s->rng;

    size_t band = pick_weighted(r, AGE_BAND_WEIGHTS, SN_ARRAY_LEN(AGE_BANDS));
    size_t cause = pick_weighted(r, m->cause_weights[band], v->sets[SET_CAUSE].count);
    const char *type =
        cause == m->suid
            ? "fatality"
            : INCIDENT_TYPES[pick_weighted(r, INCIDENT_TYPE_WEIGHTS, SN_ARRAY_LEN(INCIDENT_TYPES))];
    int back =
        1 + (int)pick_weighted(r, MONTHS_BEFORE_WEIGHTS, SN_ARRAY_LEN(MONTHS_BEFORE_WEIGHTS));
    int months = year * 12 + (month - 1) - back;
    char incident_month[16];
    snprintf(incident_month, sizeof(incident_month), "%04d-%02d", months / 12, months % 12 + 1);

    /* economic support: a family need, a theme, or both */
    int economic = rng_percent(r, cause == m->suid ? ECONOMIC_SUID_PCT : ECONOMIC_OTHER_PCT);
    int economic_need = 0, economic_theme = 0;
    if (economic) {
        unsigned how = (unsigned)rng_below(r, 100);
        economic_need = how < 50 || how >= 70;
        economic_theme = how >= 50;
    }
    size_t themes[MAX_OPPORTUNITIES];
    size_t n = review_themes(s, economic_theme, themes);
    int placed = 0;
    for (size_t i = 0; i < n; i++)
        placed |= themes[i] == m->economic_theme;
    if (economic_theme && !placed) economic_need = 1; /* no room left for the theme */

    json_t *data = checked(json_object());
    put_string(data, "review_id", review_id);
    put_string(data, "jurisdiction", j->code);
    put_string(data, "finalized_at", finalized_at);
    json_t *incident = checked(json_object());
    put_string(incident, "type", type);
    put_string(incident, "cause", v->sets[SET_CAUSE].terms[cause].code);
    put_string(incident, "month", incident_month);
    put_string(incident, "child_age_band", AGE_BANDS[band]);
    put(incident, "prior_agency_involvement", json_boolean(rng_percent(r, PRIOR_INVOLVED_PCT)));
    put(data, "incident", incident);
    json_t *opportunities = checked(json_array());
    for (size_t i = 0; i < n; i++)
        append(opportunities, opportunity_new(s, themes[i]));
    put(data, "improvement_opportunities", opportunities);
    put(data, "family_needs", family_needs_new(s, cause, economic_need));
    return data;
}

/* Writes the review finalized at epoch second t; -1 on a write error. */
static int emit_review(struct sim *s, int64_t t)
{
    struct jurisdiction *j = &s->jurisdictions[next_jurisdiction(s)];
    int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t second = t - day * 86400;
    int year, month, mday;
    civil_from_days(day, &year, &month, &mday);
    char finalized_at[32];
    snprintf(finalized_at, sizeof(finalized_at), "%04d-%02d-%02dT%02d:%02d:%02dZ", year, month,
             mday, (int)(second / 3600), (int)(second / 60 % 60), (int)(second % 60));

    /* numbered per jurisdiction and year, from where the simulation found it */
    if (j->year != year) {
        j->year = year;
        j->next_number = 1 + (unsigned)rng_below(&s->rng, 40);
    }
    char review_id[64];
    snprintf(review_id, sizeof(review_id), "%s-%04d-%04u", j->review_prefix, year,
             j->next_number++);

    s->emitted++;
    char id[64];
    snprintf(id, sizeof(id), "sim-%" PRIu64 "-%" PRIu64, s->seed, s->emitted);
    char source[64];
    snprintf(source, sizeof(source), "urn:npcs:jurisdiction:%s", j->code);

    json_t *event = checked(json_object());
    put_string(event, "specversion", "1.0");
    put_string(event, "type", "org.npcs.review.completed.v1");
    put_string(event, "source", source);
    put_string(event, "id", id);
    put_string(event, "time", finalized_at);
    put_string(event, "datacontenttype", "application/json");
    put(event, "data", review_new(s, j, review_id, finalized_at, year, month));
    int rc = json_dumpf(event, s->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(event);
    if (rc != 0 || fputc('\n', s->out) == EOF) return -1;
    return 0;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* count reviews within [start, start + length) seconds, length <= SPAN_MAX,
 * uniformly at random, in time order */
static int emit_span(struct sim *s, int64_t start, uint32_t length, uint64_t count)
{
    if (count <= TIMES_MAX) {
        for (uint64_t i = 0; i < count; i++)
            s->times[i] = (uint32_t)rng_below(&s->rng, length);
        qsort(s->times, count, sizeof(uint32_t), compare_u32);
        for (uint64_t i = 0; i < count; i++)
            if (emit_review(s, start + s->times[i]) != 0) return -1;
        return 0;
    }
    /* too many to sort in place: count them second by second */
    memset(s->per_second, 0, length * sizeof(uint64_t));
    for (uint64_t i = 0; i < count; i++)
        s->per_second[rng_below(&s->rng, length)]++;
    for (uint32_t sec = 0; sec < length; sec++)
        for (uint64_t i = 0; i < s->per_second[sec]; i++)
            if (emit_review(s, start + sec) != 0) return -1;
    return 0;
}

/* count reviews on the day starting at epoch second start, in time order */
static int emit_day(struct sim *s, int64_t start, uint64_t count)
{
    if (count <= TIMES_MAX) {
        for (uint64_t i = 0; i < count; i++) {
            size_t hour = pick_weighted(&s->rng, HOUR_WEIGHTS, 24);
            s->times[i] = (uint32_t)(hour * 3600 + rng_below(&s->rng, 3600));
        }
        qsort(s->times, count, sizeof(uint32_t), compare_u32);
        for (uint64_t i = 0; i < count; i++)
            if (emit_review(s, start + s->times[i]) != 0) return -1;
        return 0;
    }
    uint64_t per_hour[24] = {0};
    for (uint64_t i = 0; i < count; i++)
        per_hour[pick_weighted(&s->rng, HOUR_WEIGHTS, 24)]++;
    for (size_t h = 0; h < 24; h++)
        if (emit_span(s, start + (int64_t)h * 3600, SPAN_MAX, per_hour[h]) != 0) return -1;
    return 0;
}

/* Each review falls on a day drawn at random (a multinomial draw, counted
 * per day so that nothing but the counts is held): a weekday weighs ten
 * times a weekend day, and each day's weight varies. */
static int simulate(struct sim *s, int64_t first_day, int64_t last_day, uint64_t reviews)
{
    size_t days = (size_t)(last_day - first_day + 1);
    uint64_t *cumulative = xcalloc(days, sizeof(uint64_t));
    uint64_t *per_day = xcalloc(days, sizeof(uint64_t));
    uint64_t total = 0;
    for (size_t d = 0; d < days; d++) {
        int64_t weekday = ((first_day + (int64_t)d) % 7 + 7 + 4) % 7; /* 0 = Sunday */
        uint64_t base = weekday == 0 || weekday == 6 ? 1 : 10;
        total += base * (60 + rng_below(&s->rng, 81));
        cumulative[d] = total;
    }
    for (uint64_t i = 0; i < reviews; i++) {
        uint64_t x = rng_below(&s->rng, total);
        size_t lo = 0, hi = days - 1; /* the first day whose cumulative weight exceeds x */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cumulative[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        per_day[lo]++;
    }
    int rc = 0;
    for (size_t d = 0; d < days && rc == 0; d++)
        if (per_day[d] > 0) rc = emit_day(s, (first_day + (int64_t)d) * 86400, per_day[d]);
    free(per_day);
    free(cumulative);
    return rc;
}

/* Command line */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--seed N] [--reviews N] [--jurisdictions N]\n"
            "                   [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--vocabulary FILE]\n"
            "\n"
            "Writes synthetic, realistic finalized-review events (org.npcs.review.completed.v1)\n"
            "on stdout: one structured-mode CloudEvent per line (JSON Lines), in order of\n"
            "finalized_at. The same arguments give the same bytes on every machine.\n"
            "\n"
            "Options:\n"
            "  --seed N           seed of the pseudo-random generator, 0 to 2^64-1 (default 1)\n"
            "  --reviews N        how many reviews (events) to write, 0 to %llu (default 100)\n"
            "  --jurisdictions N  how many member jurisdictions (states, counties, tribal\n"
            "                     nations) finalize them, 1 to %d (default 12)\n"
            "  --from DATE        first day a review may be finalized (default 2025-01-01)\n"
            "  --to DATE          last day, inclusive (default 2025-12-31)\n"
            "  --vocabulary FILE  where the codes come from (default: " DEFAULT_VOCABULARY "\n"
            "                     of the source tree the binary was built in, else of the\n"
            "                     current directory, else " INSTALLED_VOCABULARY ")\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n"
            "\n"
            "The mix follows the partnership's published figures: about 2.6 improvement\n"
            "opportunities per review; teamwork and coordination in ~55%% of reviews, mostly\n"
            "with a partner agency, law enforcement first; economic support (family need or\n"
            "theme) in ~23%% of reviews, ~45%% after a sudden unexpected infant death (suid).\n"
            "\n"
            "Example: a year of 5,000 reviews from 40 jurisdictions, reproducible with seed 7:\n"
            "  " PROG " --seed 7 --reviews 5000 --jurisdictions 40 \\\n"
            "      --from 2025-01-01 --to 2025-12-31 > reviews.jsonl\n"
            "\n"
            "Exit status: 0 success, 1 the output could not be written, 2 bad usage or a\n"
            "vocabulary that cannot be used.\n",
            (unsigned long long)MAX_REVIEWS, MAX_JURISDICTIONS);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" PROG " --help' for more information.\n", stderr);
    return 2;
}

/* A decimal number within [min, max], nothing else; -1 if not. */
static int parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *value)
{
    if (s[0] < '0' || s[0] > '9') return -1; /* strtoull would accept "-1" and " 1" */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
    *value = v;
    return 0;
}

/* The vocabulary of the tree this binary was built in (build/bin, or a
 * variant such as build/asan/bin), else of the current directory, else the
 * installed one. */
static char *default_vocabulary(void)
{
    static const char *const up[] = {"../..", "../../.."};
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len < 0) len = 0;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
        for (size_t i = 0; i < SN_ARRAY_LEN(up); i++) {
            char *path = NULL;
            if (asprintf(&path, "%s/%s/%s", exe, up[i], DEFAULT_VOCABULARY) < 0) sn_oom(0);
            if (access(path, R_OK) == 0) return path;
            free(path);
        }
    }
    if (access(DEFAULT_VOCABULARY, R_OK) != 0 && access(INSTALLED_VOCABULARY, R_OK) == 0)
        return xstrdup(INSTALLED_VOCABULARY);
    return xstrdup(DEFAULT_VOCABULARY);
}

int main(int argc, char **argv)
{
    enum { OPT_SEED = 256, OPT_REVIEWS, OPT_JURISDICTIONS, OPT_FROM, OPT_TO, OPT_VOCABULARY };
    static const struct option options[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"reviews", required_argument, NULL, OPT_REVIEWS},
        {"jurisdictions", required_argument, NULL, OPT_JURISDICTIONS},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"vocabulary", required_argument, NULL, OPT_VOCABULARY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    uint64_t seed = 1, reviews = 100, jurisdiction_count = 12;
    const char *from = "2025-01-01", *to = "2025-12-31", *vocabulary = NULL;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
        switch (opt) {
        case OPT_SEED:
            if (parse_number(optarg, 0, UINT64_MAX, &seed) != 0)
                return bad_usage("--seed: expected a whole number from 0 to %" PRIu64 ", got '%s'",
                                 UINT64_MAX, optarg);
            break;
        case OPT_REVIEWS:
            if (parse_number(optarg, 0, MAX_REVIEWS, &reviews) != 0)
                return bad_usage("--reviews: expected a whole number from 0 to %llu, got '%s'",
                                 (unsigned long long)MAX_REVIEWS, optarg);
            break;
        case OPT_JURISDICTIONS:
            if (parse_number(optarg, 1, MAX_JURISDICTIONS, &jurisdiction_count) != 0)
                return bad_usage("--jurisdictions: expected a whole number from 1 to %d, got '%s'",
                                 MAX_JURISDICTIONS, optarg);
            break;
        case OPT_FROM: from = optarg; break;
        case OPT_TO: to = optarg; break;
        case OPT_VOCABULARY: vocabulary = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf(PROG " %s (%s)\n", SN_VERSION, SN_COMMIT); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt) return bad_usage("unknown option '-%c'", optopt);
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return bad_usage("unexpected argument '%s'", argv[optind]);
    int64_t first_day, last_day;
    if (parse_date(from, &first_day) != 0)
        return bad_usage("--from: expected a date YYYY-MM-DD between %d and %d, got '%s'", MIN_YEAR,
                         MAX_YEAR, from);
    if (parse_date(to, &last_day) != 0)
        return bad_usage("--to: expected a date YYYY-MM-DD between %d and %d, got '%s'", MIN_YEAR,
                         MAX_YEAR, to);
    if (first_day > last_day) return bad_usage("--from %s is after --to %s", from, to);

    char *vocabulary_path = vocabulary ? xstrdup(vocabulary) : default_vocabulary();
    char err[1024];
    struct vocab vocab;
    struct sim s;
    memset(&s, 0, sizeof(s));
    if (vocab_load(vocabulary_path, &vocab, err, sizeof(err)) != SN_OK ||
        model_init(&s.model, &vocab, vocabulary_path, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, PROG ": %s%s\n", err,
                vocabulary ? "" : " (give the vocabulary with --vocabulary FILE)");
        model_free(&s.model);
        vocab_free(&vocab);
        free(vocabulary_path);
        return 2;
    }

    rng_seed(&s.rng, seed);
    s.seed = seed;
    s.out = stdout;
    s.jurisdiction_count = (size_t)jurisdiction_count;
    s.jurisdictions = xcalloc(s.jurisdiction_count, sizeof(*s.jurisdictions));
    jurisdictions_init(s.jurisdictions, s.jurisdiction_count);
    for (size_t i = 0; i < s.jurisdiction_count; i++)
        s.bag_len += s.jurisdictions[i].weight;
    s.bag = xcalloc(s.bag_len, sizeof(size_t));
    for (size_t i = 0, k = 0; i < s.jurisdiction_count; i++)
        for (unsigned w = 0; w < s.jurisdictions[i].weight; w++)
            s.bag[k++] = i;
    s.bag_pos = s.bag_len; /* shuffled before the first draw */
    s.scratch_len = vocab.sets[SET_THEME].count > vocab.sets[SET_NEED].count
                        ? vocab.sets[SET_THEME].count
                        : vocab.sets[SET_NEED].count;
    s.scratch_weights = xcalloc(s.scratch_len, sizeof(unsigned));

    static char out_buffer[1 << 16];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof(out_buffer));
    int rc = simulate(&s, first_day, last_day, reviews);
    if (fflush(stdout) != 0 || ferror(stdout)) rc = -1;
    if (rc != 0) fprintf(stderr, PROG ": cannot write the events: %s\n", strerror(errno));

    free(s.scratch_weights);
    free(s.bag);
    free(s.jurisdictions);
    model_free(&s.model);
    vocab_free(&vocab);
    free(vocabulary_path);
    return rc == 0 ? 0 : 1;
}
