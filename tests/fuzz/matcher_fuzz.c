/* Matchers: the input's first line is one matcher of an otherwise valid rule
 * (recurring-themes.json of deploy/rules, grouped by three labels); its
 * following lines are the values of a fact's labels in enum fact_label order
 * (an empty line: the label is missing). When the rule loads, the fact goes
 * through rule_matches, rule_group_key, rule_group_object and rule_render. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "rules.h"

static json_t *rules_file(json_t *matcher)
{
    return json_pack(
        "{s:[{s:s,s:s,s:[s,o],s:[s,s,s],s:s,s:[{s:s,s:i,s:i},{s:s,s:i,s:i,s:f}],s:s,s:s,s:s,s:s,"
        "s:s}]}",
        "rules", "id", "fuzz-rule", "description", "a matcher from the fuzzer", "match",
        "kind=improvement_opportunity", matcher, "group_by", "theme", "jurisdiction", "partner",
        "window", "180d", "levels", "severity", "advisory", "min_reviews", 15,
        "min_jurisdictions", 5, "severity", "watch", "min_reviews", 30, "min_jurisdictions", 8,
        "min_growth", 1.5, "repeat_interval", "14d", "resolve_after", "30d", "topic",
        "notices.theme.{theme}", "headline",
        "Theme {theme} in {jurisdiction} with {partner}: {reviews} reviews from {jurisdictions} "
        "jurisdictions in {window} ({severity}) {{literal}}",
        "summary", "{theme}/{jurisdiction}/{partner}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t matcher_len = nl ? (size_t)(nl - text) : size;
    json_t *matcher = json_stringn(text, matcher_len);
    if (!matcher) return 0; /* not UTF-8: the JSON parser would have refused it */
    json_t *files = json_pack("{s:o}", "fuzz.json", rules_file(matcher));
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    if (rules_load_json(files, schemas, &rs, errors) != SN_OK) {
        json_decref(errors);
        json_decref(files);
        return 0;
    }

    /* the label values, NUL-terminated copies */
    char *rest = NULL;
    struct fact_labels f = {{0}};
    if (nl) {
        size_t rest_len = size - matcher_len - 1;
        rest = malloc(rest_len + 1);
        memcpy(rest, nl + 1, rest_len);
        rest[rest_len] = '\0';
        char *p = rest;
        for (int i = 0; i < FACT_LABEL_COUNT && p; i++) {
            char *end = memchr(p, '\n', strlen(p));
            if (end) *end = '\0';
            f.values[i] = *p ? p : NULL;
            p = end ? end + 1 : NULL;
        }
    }
    const struct rule *r = rule_set_get(rs, 0);
    rule_matches(r, &f);
    free(rule_group_key(r, &f));
    json_t *group = rule_group_object(r, &f);
    free(rule_render(r->headline, group, size, matcher_len, r->window_ms,
                     rule_severity_name(r->levels[r->level_count - 1].severity)));
    free(rule_render(r->topic, group, 0, 0, r->window_ms, NULL));
    json_decref(group);
    free(rest);
    rule_set_free(rs);
    json_decref(errors);
    json_decref(files);
    return 0;
}
