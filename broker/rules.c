#include "rules.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"

#define RULES_SCHEMA "rules.v1.json"

static const char *const label_names[FACT_LABEL_COUNT] = {
    [FACT_KIND] = "kind",         [FACT_JURISDICTION] = "jurisdiction",
    [FACT_THEME] = "theme",       [FACT_SUBTHEME] = "subtheme",
    [FACT_PARTNER] = "partner",   [FACT_SEIPS_DOMAIN] = "seips_domain",
    [FACT_PRIORITY] = "priority", [FACT_INCIDENT_TYPE] = "incident_type",
    [FACT_CAUSE] = "cause",       [FACT_AGE_BAND] = "age_band",
    [FACT_NEED] = "need",
};

/* The vocabulary set a label's codes come from: a value that is not one of
 * them can never match, so it is a typo worth refusing at load. */
static const char *const label_vocabulary[FACT_LABEL_COUNT] = {
    [FACT_THEME] = "theme", [FACT_SUBTHEME] = "subtheme", [FACT_PARTNER] = "partner",
    [FACT_CAUSE] = "cause", [FACT_NEED] = "family_need",
};
/* What facts_from_review() writes as kind. */
static const char *const kind_values[] = {"improvement_opportunity", "family_need"};

static const char *const severity_names[] = {
    [RULE_ADVISORY] = "advisory",
    [RULE_WATCH] = "watch",
    [RULE_WARNING] = "warning",
    [RULE_CRITICAL] = "critical",
};

struct rule_set {
    struct rule *rules;
    size_t count;
    size_t cap;
};

int fact_label_index(const char *name)
{
    for (int i = 0; i < FACT_LABEL_COUNT; i++)
        if (strcmp(name, label_names[i]) == 0) return i;
    return -1;
}

const char *fact_label_name(int index)
{
    return index >= 0 && index < FACT_LABEL_COUNT ? label_names[index] : NULL;
}

const char *const *notice_label_names(void)
{
    static const char *names[4 + FACT_LABEL_COUNT + 1];
    if (!names[0]) {
        size_t n = 0;
        names[n++] = "severity";
        names[n++] = "rule";
        names[n++] = "status";
        names[n++] = "jurisdiction";
        for (int i = 0; i < FACT_LABEL_COUNT; i++)
            if (i != FACT_JURISDICTION) names[n++] = label_names[i];
        names[n] = NULL;
    }
    return names;
}

void fact_labels_from_json(const json_t *fact, struct fact_labels *f)
{
    for (int i = 0; i < FACT_LABEL_COUNT; i++)
        f->values[i] = json_string_value(json_object_get(fact, label_names[i]));
}

const char *rule_severity_name(enum rule_severity severity)
{
    return (size_t)severity < SN_ARRAY_LEN(severity_names) ? severity_names[severity] : "unknown";
}

/* ---- growable strings ---- */

struct text {
    char *data;
    size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (!t->data || t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = xrealloc(t->data, t->cap);
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_adds(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* Returns the string, "" when nothing was added; the caller frees. */
static char *text_finish(struct text *t)
{
    if (!t->data) return xstrdup("");
    return t->data;
}

/* ---- matching, groups, levels, templates ---- */

int rule_matches(const struct rule *r, const struct fact_labels *f)
{
    for (size_t i = 0; i < r->matcher_count; i++)
        if (!matcher_holds(&r->matchers[i].m, f->values[r->matchers[i].label])) return 0;
    return 1;
}

static int groups_by(const struct rule *r, int label)
{
    for (size_t i = 0; i < r->group_by_count; i++)
        if (r->group_by[i] == label) return 1;
    return 0;
}

char *rule_group_key(const struct rule *r, const struct fact_labels *f)
{
    struct text key = {0};
    int first = 1;
    for (int label = 0; label < FACT_LABEL_COUNT; label++) {
        if (!groups_by(r, label)) continue;
        if (!first) text_adds(&key, ",");
        first = 0;
        text_adds(&key, label_names[label]);
        text_adds(&key, "=");
        for (const char *p = f->values[label] ? f->values[label] : ""; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (isalnum(c) || strchr("_.:-", c)) {
                text_add(&key, p, 1);
            } else {
                char esc[4];
                snprintf(esc, sizeof(esc), "%%%02X", c);
                text_add(&key, esc, 3);
            }
        }
    }
    return text_finish(&key);
}

json_t *rule_group_object(const struct rule *r, const struct fact_labels *f)
{
    json_t *group = json_object();
    for (size_t i = 0; i < r->group_by_count; i++) {
        const char *v = f->values[r->group_by[i]];
        json_object_set_new(group, label_names[r->group_by[i]], json_string(v ? v : ""));
    }
    return group;
}

int rule_has_growth(const struct rule *r)
{
    for (size_t i = 0; i < r->level_count; i++)
        if (r->levels[i].min_growth > 0) return 1;
    return 0;
}

int64_t rule_span(const struct rule *r)
{
    if (!rule_has_growth(r)) return r->window_ms;
    return r->window_ms > INT64_MAX / 2 ? INT64_MAX : 2 * r->window_ms;
}

int64_t rule_set_horizon(const struct rule_set *rs, const char **rule_id)
{
    int64_t longest = 0;
    if (rule_id) *rule_id = NULL;
    for (size_t i = 0; rs && i < rule_set_count(rs); i++) {
        const struct rule *r = rule_set_get(rs, i);
        if (rule_span(r) > longest) {
            longest = rule_span(r);
            if (rule_id) *rule_id = r->id;
        }
    }
    return longest;
}

int rules_level_reached(const struct rule *r, size_t reviews, size_t jurisdictions, double growth)
{
    for (size_t i = r->level_count; i-- > 0;) {
        const struct rule_level *l = &r->levels[i];
        /* written so that a NaN growth fails a growth condition */
        if (reviews >= l->min_reviews && jurisdictions >= l->min_jurisdictions &&
            (l->min_growth <= 0 || growth >= l->min_growth))
            return (int)i;
    }
    return -1;
}

void rule_format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        int64_t ms;
        const char *name;
    } units[] = {{7 * 86400000LL, "week"}, {86400000LL, "day"}, {3600000LL, "hour"},
                 {60000LL, "minute"},      {1000LL, "second"},  {1, "millisecond"}};
    if (ms <= 0) {
        snprintf(buf, len, "0 seconds");
        return;
    }
    for (size_t i = 0; i < SN_ARRAY_LEN(units); i++) {
        if (ms % units[i].ms != 0) continue;
        int64_t n = ms / units[i].ms;
        snprintf(buf, len, "%" PRId64 " %s%s", n, units[i].name, n == 1 ? "" : "s");
        return;
    }
}

char *rule_render(const char *template_text, const json_t *group, size_t reviews,
                  size_t jurisdictions, int64_t window_ms, const char *severity)
{
    struct text out = {0};
    const char *p = template_text;
    while (*p) {
        const char *brace = strpbrk(p, "{}");
        if (!brace) {
            text_adds(&out, p);
            break;
        }
        text_add(&out, p, (size_t)(brace - p));
        if (brace[0] == brace[1]) { /* {{ or }} */
            text_add(&out, brace, 1);
            p = brace + 2;
            continue;
        }
        const char *close = brace[0] == '{' ? strchr(brace, '}') : NULL;
        if (!close) { /* a lone brace: loaded templates have none, keep it */
            text_add(&out, brace, 1);
            p = brace + 1;
            continue;
        }
        char name[64], value[64];
        size_t n = (size_t)(close - brace - 1);
        snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1),
                 brace + 1);
        if (strcmp(name, "reviews") == 0) {
            snprintf(value, sizeof(value), "%zu", reviews);
            text_adds(&out, value);
        } else if (strcmp(name, "jurisdictions") == 0) {
            snprintf(value, sizeof(value), "%zu", jurisdictions);
            text_adds(&out, value);
        } else if (strcmp(name, "window") == 0) {
            rule_format_duration(window_ms, value, sizeof(value));
            text_adds(&out, value);
        } else if (strcmp(name, "severity") == 0) {
            text_adds(&out, severity ? severity : "");
        } else {
            const char *v = json_string_value(json_object_get(group, name));
            text_adds(&out, v ? v : "");
        }
        p = close + 1;
    }
    return text_finish(&out);
}

/* ---- the set ---- */

static void rule_release(struct rule *r)
{
    for (size_t i = 0; i < r->matcher_count; i++) {
        matcher_free(&r->matchers[i].m);
    }
    free(r->matchers);
    free(r->group_by);
    free(r->levels);
    free(r->id);
    free(r->description);
    free(r->file);
    free(r->topic);
    free(r->headline);
    free(r->summary);
    json_decref(r->definition);
}

void rule_set_free(struct rule_set *rs)
{
    if (!rs) return;
    for (size_t i = 0; i < rs->count; i++)
        rule_release(&rs->rules[i]);
    free(rs->rules);
    free(rs);
}

size_t rule_set_count(const struct rule_set *rs)
{
    return rs ? rs->count : 0;
}

const struct rule *rule_set_get(const struct rule_set *rs, size_t i)
{
    return rs && i < rs->count ? &rs->rules[i] : NULL;
}

const struct rule *rule_set_find(const struct rule_set *rs, const char *id)
{
    for (size_t i = 0; rs && i < rs->count; i++)
        if (rs->rules[i].id && strcmp(rs->rules[i].id, id) == 0) return &rs->rules[i];
    return NULL;
}

static struct rule *rule_set_add(struct rule_set *rs)
{
    if (rs->count == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 8;
        rs->rules = xrealloc(rs->rules, rs->cap * sizeof(*rs->rules));
    }
    struct rule *r = &rs->rules[rs->count++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* ---- loading ---- */

/* One file being checked. */
struct load {
    const struct schema_set *schemas;
    struct rule_set *rs;
    json_t *errors;        /* where every problem goes */
    size_t problems;       /* how many this load appended */
    const char *file;      /* as named to the operator */
    json_t *rules;         /* the file's "rules" array, or NULL */
    json_t *schema_errors; /* the schema's violations of this file */
};

/* The name of rule i in messages: its id when it has one, else "#i". */
static void rule_name(const struct load *ld, size_t i, char *buf, size_t len)
{
    const char *id = json_string_value(json_object_get(json_array_get(ld->rules, i), "id"));
    if (id)
        snprintf(buf, len, "%s", id);
    else
        snprintf(buf, len, "#%zu", i);
}

/* A JSON string of s; bytes that are not UTF-8 (a file name, jansson's quote
 * of a broken file) become '?', so that no error is lost. */
static json_t *utf8_string(const char *s)
{
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

static void report(struct load *ld, const char *rule, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(struct load *ld, const char *rule, const char *pointer, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_object_set_new(e, "file", utf8_string(ld->file));
    json_object_set_new(e, "rule", rule ? utf8_string(rule) : json_null());
    json_object_set_new(e, "pointer", utf8_string(pointer));
    json_object_set_new(e, "message", utf8_string(msg));
    json_array_append_new(ld->errors, e);
    ld->problems++;
}

/* 0 when the schema already found something wrong at pointer or below it: the
 * finer checks of that field would only repeat it. */
static int schema_clean(const struct load *ld, const char *pointer)
{
    size_t n = strlen(pointer), i;
    json_t *e;
    json_array_foreach(ld->schema_errors, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "pointer"));
        if (p && strncmp(p, pointer, n) == 0 && (p[n] == '\0' || p[n] == '/')) return 0;
    }
    return 1;
}

static void list_labels(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < FACT_LABEL_COUNT && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", label_names[i]);
}

static int in_codes(const json_t *codes, const char *value)
{
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c)
    {
        if (json_is_string(c) && strcmp(json_string_value(c), value) == 0) return 1;
    }
    return 0;
}

/* The codes a label's values come from, as a new JSON array, or NULL when the
 * label is not coded (jurisdiction, ...) or the vocabulary lacks the set. */
static json_t *label_codes(const struct load *ld, int label, const char **set_name)
{
    if (label == FACT_KIND) {
        *set_name = "kind";
        json_t *codes = json_array();
        for (size_t i = 0; i < SN_ARRAY_LEN(kind_values); i++)
            json_array_append_new(codes, json_string(kind_values[i]));
        return codes;
    }
    *set_name = label_vocabulary[label];
    if (!*set_name) return NULL;
    const json_t *codes = schema_vocabulary_codes(ld->schemas, *set_name);
    return codes ? json_deep_copy(codes) : NULL;
}

static void check_matchers(struct load *ld, struct rule *r, const char *rule, const char *base,
                           const json_t *match)
{
    if (!json_is_array(match)) return;
    r->matchers = xcalloc(json_array_size(match), sizeof(*r->matchers));
    size_t i;
    json_t *item;
    json_array_foreach(match, i, item)
    {
        char ptr[128], msg[768];
        snprintf(ptr, sizeof(ptr), "%s/match/%zu", base, i);
        if (!json_is_string(item) || !schema_clean(ld, ptr)) continue;
        const char *text = json_string_value(item);
        struct rule_matcher rm = {0};
        struct matcher *m = &rm.m;
        if (matcher_parse(text, m, msg, sizeof(msg)) != 0) {
            report(ld, rule, ptr, "%s", msg);
            continue;
        }
        rm.label = strlen(m->name) < 63 ? fact_label_index(m->name) : -1;
        if (rm.label < 0) {
            char labels[256];
            list_labels(labels, sizeof(labels));
            report(ld, rule, ptr, "unknown label '%s' (the labels of a fact: %s)", m->name, labels);
            matcher_free(m);
            continue;
        }
        if (matcher_compile(m, msg, sizeof(msg)) != 0) {
            report(ld, rule, ptr, "'%s': %s", text, msg);
            matcher_free(m);
            continue;
        }
        const char *set_name = NULL;
        json_t *codes = label_codes(ld, rm.label, &set_name);
        if (m->op == MATCH_RE || m->op == MATCH_NRE) {
            /* a positive regex of a coded label that matches no code (nor the
             * missing label) can never hold: surely a typo */
            if (m->op == MATCH_RE && codes && !matcher_full_match(&m->re, "")) {
                int any = 0;
                size_t k;
                json_t *c;
                json_array_foreach(codes, k, c) any |=
                    matcher_full_match(&m->re, json_string_value(c));
                if (!any)
                    report(ld, rule, ptr, "'%s': the regex matches no %s code of the vocabulary",
                           text, set_name);
            }
        } else if (codes && m->value[0] && !in_codes(codes, m->value)) {
            report(ld, rule, ptr, "'%s': '%s' is not a %s code of the vocabulary", text, m->value,
                   set_name);
        }
        json_decref(codes);
        r->matchers[r->matcher_count++] = rm;
    }
}

static void check_group_by(struct load *ld, struct rule *r, const char *rule, const char *base,
                           const json_t *group_by)
{
    if (!json_is_array(group_by)) return;
    r->group_by = xcalloc(json_array_size(group_by), sizeof(*r->group_by));
    size_t i;
    json_t *item;
    json_array_foreach(group_by, i, item)
    {
        char ptr[128];
        snprintf(ptr, sizeof(ptr), "%s/group_by/%zu", base, i);
        if (!json_is_string(item)) continue;
        int label = fact_label_index(json_string_value(item));
        if (label < 0) {
            /* the schema's enumeration says so already, unless someone edited it */
            if (schema_clean(ld, ptr)) {
                char labels[256];
                list_labels(labels, sizeof(labels));
                report(ld, rule, ptr, "unknown label '%s' (the labels of a fact: %s)",
                       json_string_value(item), labels);
            }
            continue;
        }
        if (groups_by(r, label)) {
            report(ld, rule, ptr, "'%s' appears twice in group_by", label_names[label]);
            continue;
        }
        r->group_by[r->group_by_count++] = label;
    }
}

static void check_duration(struct load *ld, const char *rule, const char *base,
                           const json_t *rule_obj, const char *field, int64_t min_ms, int64_t *out)
{
    char ptr[128];
    snprintf(ptr, sizeof(ptr), "%s/%s", base, field);
    const char *text = json_string_value(json_object_get(rule_obj, field));
    if (!text || !schema_clean(ld, ptr)) return;
    if (conf_parse_duration(text, out) != 0) {
        report(ld, rule, ptr, "'%s' is not a duration such as 12h, 90d or 26w", text);
        return;
    }
    if (*out < min_ms) report(ld, rule, ptr, "'%s' must be longer than zero", text);
}

static const char *const counter_names[] = {"reviews", "jurisdictions", "window", "severity"};

/* Checks the placeholders of a template against what a group of this rule
 * has; a topic may not use what changes between revisions of one notice. */
static void check_template(struct load *ld, struct rule *r, const char *rule, const char *base,
                           const json_t *rule_obj, const char *field, char **out)
{
    char ptr[128];
    snprintf(ptr, sizeof(ptr), "%s/%s", base, field);
    const char *text = json_string_value(json_object_get(rule_obj, field));
    if (!text) return;
    *out = xstrdup(text);
    if (!schema_clean(ld, ptr)) return;
    int is_topic = strcmp(field, "topic") == 0;
    char grouped[256] = "";
    for (size_t i = 0, o = 0; i < r->group_by_count && o < sizeof(grouped); i++)
        o += (size_t)snprintf(grouped + o, sizeof(grouped) - o, "%s%s", i ? ", " : "",
                              label_names[r->group_by[i]]);
    for (const char *p = text; *p;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            p += 2;
            continue;
        }
        if (*p != '{') {
            p++;
            continue;
        }
        const char *close = strchr(p, '}');
        const char *reopen = strchr(p + 1, '{');
        if (!close || (reopen && reopen < close)) {
            report(ld, rule, ptr,
                   "unterminated placeholder at character %zu: write {{ for a literal brace",
                   (size_t)(p - text) + 1);
            p++;
            continue;
        }
        int n = (int)(close - p - 1);
        char name[64];
        snprintf(name, sizeof(name), "%.*s", n, p + 1);
        int counter = 0;
        for (size_t i = 0; i < SN_ARRAY_LEN(counter_names); i++)
            counter |= (size_t)n == strlen(counter_names[i]) &&
                       strncmp(p + 1, counter_names[i], (size_t)n) == 0;
        int label = (size_t)n < sizeof(name) ? fact_label_index(name) : -1;
        if (counter) {
            if (is_topic && strcmp(name, "window") != 0)
                report(ld, rule, ptr,
                       "{%s} changes between revisions of one notice, so a topic cannot use it "
                       "(a topic may use group_by labels and {window})",
                       name);
        } else if (label >= 0) {
            if (!groups_by(r, label))
                report(ld, rule, ptr,
                       "{%s}: this rule does not group by %s, so a group has no single value for "
                       "it (group_by: %s)",
                       name, name, grouped[0] ? grouped : "none");
        } else {
            report(ld, rule, ptr,
                   "unknown placeholder {%.*s}: use a group_by label of the rule (%s) or "
                   "{reviews}, {jurisdictions}, {window}, {severity}",
                   n, p + 1, grouped[0] ? grouped : "none");
        }
        p = close + 1;
    }
}

static int severity_rank(const char *name)
{
    for (size_t i = 0; name && i < SN_ARRAY_LEN(severity_names); i++)
        if (strcmp(name, severity_names[i]) == 0) return (int)i;
    return -1;
}

/* Levels must nest: a higher one asks at least as much on every threshold, so
 * that it holding implies every lower one holds ("below the lowest level" is
 * then well defined for resolving), and more on one of them, or the lower one
 * could never be reported. */
/* 1 (reported) when a level's minimum count is below the one before. */
static int count_below(struct load *ld, const char *rule, const char *ptr, const char *field,
                       size_t value, size_t before)
{
    if (value >= before) return 0;
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/%s", ptr, field);
    report(ld, rule, sub,
           "%zu is below the %zu of the level before: a higher level must ask at least as much",
           value, before);
    return 1;
}

static void check_levels(struct load *ld, struct rule *r, const char *rule, const char *base,
                         const json_t *levels)
{
    if (!json_is_array(levels)) return;
    r->levels = xcalloc(json_array_size(levels), sizeof(*r->levels));
    int prev_ok = 0;
    struct rule_level prev = {0};
    size_t j;
    json_t *lv;
    json_array_foreach(levels, j, lv)
    {
        char ptr[128], sub[160];
        snprintf(ptr, sizeof(ptr), "%s/levels/%zu", base, j);
        int rank = severity_rank(json_string_value(json_object_get(lv, "severity")));
        const json_t *reviews = json_object_get(lv, "min_reviews");
        const json_t *jurisdictions = json_object_get(lv, "min_jurisdictions");
        const json_t *growth = json_object_get(lv, "min_growth");
        int ok = json_is_object(lv) && schema_clean(ld, ptr) && rank >= 0 &&
                 json_is_number(reviews) && json_is_number(jurisdictions) &&
                 (!growth || json_is_number(growth));
        if (!ok) {
            prev_ok = 0;
            continue;
        }
        struct rule_level l = {
            .severity = (enum rule_severity)rank,
            .min_reviews = (size_t)json_number_value(reviews),
            .min_jurisdictions = (size_t)json_number_value(jurisdictions),
            .min_growth = growth ? json_number_value(growth) : 0,
        };
        if (prev_ok) {
            int bad = 0;
            if (l.severity <= prev.severity) {
                snprintf(sub, sizeof(sub), "%s/severity", ptr);
                report(ld, rule, sub,
                       "'%s' after '%s': severities ascend (advisory, watch, warning, critical)",
                       severity_names[l.severity], severity_names[prev.severity]);
                bad = 1;
            }
            bad |= count_below(ld, rule, ptr, "min_reviews", l.min_reviews, prev.min_reviews);
            bad |= count_below(ld, rule, ptr, "min_jurisdictions", l.min_jurisdictions,
                               prev.min_jurisdictions);
            if (l.min_growth < prev.min_growth) {
                snprintf(sub, sizeof(sub), "%s%s", ptr, growth ? "/min_growth" : "");
                report(ld, rule, sub,
                       "needs a min_growth of at least %g like the level before: a higher level "
                       "must ask at least as much",
                       prev.min_growth);
                bad = 1;
            }
            if (!bad && l.min_reviews == prev.min_reviews &&
                l.min_jurisdictions == prev.min_jurisdictions && l.min_growth == prev.min_growth)
                report(ld, rule, ptr,
                       "has the same thresholds as the level before, which could then never be "
                       "reported: raise one of them");
        }
        r->levels[r->level_count++] = l;
        prev = l;
        prev_ok = 1;
    }
}

static void check_rule(struct load *ld, size_t index, json_t *obj)
{
    char base[64], rule[80];
    snprintf(base, sizeof(base), "/rules/%zu", index);
    rule_name(ld, index, rule, sizeof(rule));
    struct rule *r = rule_set_add(ld->rs);
    r->file = xstrdup(ld->file);
    r->index = index;
    r->definition = json_incref(obj);

    const char *id = json_string_value(json_object_get(obj, "id"));
    if (id) {
        const struct rule *first = rule_set_find(ld->rs, id);
        char ptr[80];
        snprintf(ptr, sizeof(ptr), "%s/id", base);
        if (first)
            report(ld, rule, ptr, "duplicate rule id '%s': first defined in %s at /rules/%zu", id,
                   first->file, first->index);
        r->id = xstrdup(id);
    }
    const char *description = json_string_value(json_object_get(obj, "description"));
    r->description = xstrdup(description ? description : "");

    check_matchers(ld, r, rule, base, json_object_get(obj, "match"));
    check_group_by(ld, r, rule, base, json_object_get(obj, "group_by"));
    check_duration(ld, rule, base, obj, "window", 1, &r->window_ms);
    check_duration(ld, rule, base, obj, "repeat_interval", 0, &r->repeat_interval_ms);
    check_duration(ld, rule, base, obj, "resolve_after", 0, &r->resolve_after_ms);
    check_levels(ld, r, rule, base, json_object_get(obj, "levels"));
    check_template(ld, r, rule, base, obj, "topic", &r->topic);
    check_template(ld, r, rule, base, obj, "headline", &r->headline);
    check_template(ld, r, rule, base, obj, "summary", &r->summary);
}

/* Checks the parsed content of ld->file. */
static void load_root(struct load *ld, json_t *root)
{
    ld->rules = json_object_get(root, "rules");
    if (!json_is_array(ld->rules)) ld->rules = NULL;
    ld->schema_errors = json_array();
    schema_validate(ld->schemas, RULES_SCHEMA, root, "", ld->schema_errors);
    size_t i;
    json_t *e;
    json_array_foreach(ld->schema_errors, i, e)
    {
        const char *ptr = json_string_value(json_object_get(e, "pointer"));
        char rule[80], *end;
        const char *rule_ref = NULL;
        if (ld->rules && strncmp(ptr, "/rules/", 7) == 0 && isdigit((unsigned char)ptr[7])) {
            size_t index = (size_t)strtoul(ptr + 7, &end, 10);
            if (*end == '\0' || *end == '/') {
                rule_name(ld, index, rule, sizeof(rule));
                rule_ref = rule;
            }
        }
        report(ld, rule_ref, ptr, "%s", json_string_value(json_object_get(e, "message")));
    }
    json_t *obj;
    json_array_foreach(ld->rules, i, obj)
    {
        if (json_is_object(obj)) check_rule(ld, i, obj);
    }
    json_decref(ld->schema_errors);
    ld->schema_errors = NULL;
    ld->rules = NULL;
}

static void load_file(struct load *ld)
{
    json_error_t jerr;
    json_t *root = json_load_file(ld->file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        report(ld, NULL, "", "not a JSON file: line %d, column %d: %s", jerr.line, jerr.column,
               jerr.text);
        return;
    }
    load_root(ld, root);
    json_decref(root);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of dir, sorted by name (bytewise, whatever the locale).
 * Returns -1 with errno when dir cannot be read. */
static int list_rule_files(const char *dir, char ***out, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (ent->d_name[0] == '.' || len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(ent->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *count = n;
    return 0;
}

/* Ends a load: the set, or nothing when anything was wrong. */
static enum sn_err load_finish(struct load *ld, struct rule_set **out)
{
    if (ld->problems > 0) {
        rule_set_free(ld->rs);
        return SN_ERR_CONF;
    }
    *out = ld->rs;
    return SN_OK;
}

enum sn_err rules_load_json(const json_t *files, const struct schema_set *schemas,
                            struct rule_set **out, json_t *errors)
{
    struct load ld = {.schemas = schemas, .errors = errors, .file = ""};
    if (!schema_set_has(schemas, RULES_SCHEMA)) {
        report(&ld, NULL, "", "the schema %s is not loaded (schemas.dir)", RULES_SCHEMA);
        return SN_ERR_CONF;
    }
    if (!json_is_object(files) || json_object_size(files) == 0) {
        report(&ld, NULL, "", "expected an object of file name to rules file");
        return SN_ERR_CONF;
    }
    ld.rs = xcalloc(1, sizeof(*ld.rs));
    /* in name order, as the files of a directory */
    size_t n = json_object_size(files), i = 0;
    const char **names = xcalloc(n, sizeof(*names));
    const char *name;
    json_t *root;
    json_object_foreach((json_t *)files, name, root) names[i++] = name;
    qsort(names, n, sizeof(*names), cmp_names);
    for (i = 0; i < n; i++) {
        ld.file = names[i];
        load_root(&ld, json_object_get(files, names[i]));
    }
    free(names);
    return load_finish(&ld, out);
}

enum sn_err rules_load(const char *path, const struct schema_set *schemas, struct rule_set **out,
                       json_t *errors)
{
    struct load ld = {.schemas = schemas, .errors = errors, .file = path};
    if (!schema_set_has(schemas, RULES_SCHEMA)) {
        report(&ld, NULL, "", "the schema %s is not loaded (schemas.dir)", RULES_SCHEMA);
        return SN_ERR_CONF;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        report(&ld, NULL, "", "cannot read the rules: %s", strerror(errno));
        return SN_ERR_CONF;
    }
    ld.rs = xcalloc(1, sizeof(*ld.rs));
    if (S_ISDIR(st.st_mode)) {
        char **names;
        size_t n;
        if (list_rule_files(path, &names, &n) != 0) {
            report(&ld, NULL, "", "cannot read the directory: %s", strerror(errno));
        } else {
            for (size_t i = 0; i < n; i++) {
                char *file;
                size_t len = strlen(path);
                const char *sep = len && path[len - 1] == '/' ? "" : "/";
                if (asprintf(&file, "%s%s%s", path, sep, names[i]) < 0) sn_oom(len);
                ld.file = file;
                load_file(&ld);
                free(file);
                free(names[i]);
            }
            free(names);
            ld.file = path;
        }
    } else {
        load_file(&ld);
    }
    return load_finish(&ld, out);
}
