/* Rule files -> compiled rules, and the parts of a rule the engine applies to
 * one fact or one group: matchers, group keys, thresholds, templates. Pure: no
 * I/O after loading, no clock. The format is schemas/rules.v1.json; what a
 * schema cannot say (matcher syntax, regular expressions, placeholders,
 * ascending levels, durations, ids unique across files) is checked here and
 * reported in the same shape. */
#ifndef SN_RULES_H
#define SN_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "matcher.h"
#include "schema.h"
#include "sn.h"

/* The labels of a fact (facts.c), in this order everywhere: group keys list
 * their labels in this order whatever the order of group_by. */
enum fact_label {
    FACT_KIND,
    FACT_JURISDICTION,
    FACT_THEME,
    FACT_SUBTHEME,
    FACT_PARTNER,
    FACT_SEIPS_DOMAIN,
    FACT_PRIORITY,
    FACT_INCIDENT_TYPE,
    FACT_CAUSE,
    FACT_AGE_BAND,
    FACT_NEED,
    FACT_LABEL_COUNT
};

/* One fact as rules see it: values[FACT_THEME] is the theme, NULL when the
 * fact has no such label (which compares as "", as in Prometheus). The strings
 * are borrowed. */
struct fact_labels {
    const char *values[FACT_LABEL_COUNT];
};

/* The label's index, or -1 when name is not a label. */
int fact_label_index(const char *name);
/* The label's name ("theme"), or NULL for an index out of range. */
const char *fact_label_name(int index);
/* The labels of a notice that subscription filters and silences match, as
 * migration 005's sn_notice_labels() gives them: severity, rule, status,
 * jurisdiction (one the notice names) and the group labels, which are fact
 * labels. NULL-terminated. */
const char *const *notice_label_names(void);
/* Fills f from a fact object of facts_from_review(); the strings stay owned by
 * fact. A label that is absent or not a string is NULL. */
void fact_labels_from_json(const json_t *fact, struct fact_labels *f);

enum rule_severity { RULE_ADVISORY, RULE_WATCH, RULE_WARNING, RULE_CRITICAL };
/* "advisory", "watch", "warning", "critical". */
const char *rule_severity_name(enum rule_severity severity);

struct rule_matcher {
    int label; /* enum fact_label */
    struct matcher m;
};

struct rule_level {
    enum rule_severity severity;
    size_t min_reviews;
    size_t min_jurisdictions;
    double min_growth; /* 0: no growth condition */
};

/* A compiled rule. Read-only outside rules.c; it lives as long as its set. */
struct rule {
    char *id;
    char *description;
    char *file;         /* the file it came from, for messages */
    size_t index;       /* its position in that file's "rules" */
    json_t *definition; /* the rule object as written (for the admin API) */

    struct rule_matcher *matchers;
    size_t matcher_count;

    int *group_by; /* label indexes in the order written */
    size_t group_by_count;

    int64_t window_ms;
    int64_t repeat_interval_ms;
    int64_t resolve_after_ms;

    struct rule_level *levels; /* ascending */
    size_t level_count;

    char *topic;
    char *headline;
    char *summary;
};

struct rule_set;

/* Loads path: a rules file, or a directory whose *.json files (not those
 * starting with a dot) are read in name order. Each file is validated against
 * rules.v1.json of schemas, then checked further. Every problem found is
 * appended to errors as {"file": path, "rule": id (or "#index" when the rule
 * has no string id; null for the file as a whole), "pointer": JSON pointer
 * inside the file, "message"}. All or nothing: on any error returns
 * SN_ERR_CONF and leaves *out untouched, so a reload that fails keeps the
 * running set. On success *out is a new set the caller frees. */
enum sn_err rules_load(const char *path, const struct schema_set *schemas, struct rule_set **out,
                       json_t *errors);
/* rules_load for files already parsed (a backtest's rules sent over the API):
 * files is an object of file name -> the file's JSON, loaded in name order;
 * errors name the file as given. */
enum sn_err rules_load_json(const json_t *files, const struct schema_set *schemas,
                            struct rule_set **out, json_t *errors);
void rule_set_free(struct rule_set *rs);
size_t rule_set_count(const struct rule_set *rs);
/* The rules in load order (files by name, then position); NULL past the end. */
const struct rule *rule_set_get(const struct rule_set *rs, size_t i);
/* The rule with this id, or NULL. */
const struct rule *rule_set_find(const struct rule_set *rs, const char *id);

/* 1 when every matcher of r holds for f. */
int rule_matches(const struct rule *r, const struct fact_labels *f);

/* The group f falls in, as a canonical string: label=value pairs joined by
 * commas, labels in enum fact_label order, a missing label as an empty value,
 * bytes other than [A-Za-z0-9_.:-] of a value percent-encoded (so distinct
 * groups never share a key). "" for a rule without group_by. The caller
 * frees. */
char *rule_group_key(const struct rule *r, const struct fact_labels *f);
/* The group as {"label": "value", ...} with every group_by label (a missing
 * one as ""). A new reference: the caller decrefs. */
json_t *rule_group_object(const struct rule *r, const struct fact_labels *f);

/* 1 when some level of r has a min_growth (the engine then also counts the
 * window before the current one). */
int rule_has_growth(const struct rule *r);
/* How far back from the clock r can count a fact: its window, doubled with
 * a growth level (the window before it counts too). */
int64_t rule_span(const struct rule *r);
/* The longest rule_span() of rs (0 for none or NULL), and in *rule_id (if
 * not NULL) the rule it is of. */
int64_t rule_set_horizon(const struct rule_set *rs, const char **rule_id);

/* The index in r->levels of the highest level whose thresholds hold, or -1.
 * min_growth only applies to a level that sets it; growth is the count of this
 * window divided by that of the previous window (the caller's choice for an
 * empty previous window: INFINITY counts as any growth). */
int rules_level_reached(const struct rule *r, size_t reviews, size_t jurisdictions, double growth);

/* Expands a template: {label} from group (a missing one renders empty),
 * {reviews}, {jurisdictions}, {window} ("180 days", "26 weeks", "12 hours",
 * "1 day"), {severity} (NULL renders empty); {{ and }} are literal braces.
 * Templates of loaded rules only name placeholders they may. The caller
 * frees. */
char *rule_render(const char *template_text, const json_t *group, size_t reviews,
                  size_t jurisdictions, int64_t window_ms, const char *severity);

/* "180 days", "26 weeks", "12 hours", "90 minutes", "1 day": the largest unit
 * that divides ms. Writes at most len bytes. */
void rule_format_duration(int64_t ms, char *buf, size_t len);

#endif
