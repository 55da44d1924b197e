/* The rules loader over an arbitrary rules file: schema validation, then the
 * checks rules.c makes itself (matchers, regular expressions, durations,
 * levels, placeholders). A set that loads is walked once. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *file = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!file) return 0;
    json_t *files = json_object();
    json_object_set_new(files, "fuzz.json", file);
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    if (rules_load_json(files, schemas, &rs, errors) == SN_OK) {
        if (json_array_size(errors) != 0) abort(); /* success reports nothing */
        struct fact_labels empty = {{0}};
        for (size_t i = 0; i < rule_set_count(rs); i++) {
            const struct rule *r = rule_set_get(rs, i);
            if (rule_set_find(rs, r->id) == NULL) abort();
            rule_matches(r, &empty);
            free(rule_group_key(r, &empty));
            json_t *group = rule_group_object(r, &empty);
            free(rule_render(r->headline, group, 1, 1, r->window_ms, "advisory"));
            json_decref(group);
        }
        rule_set_free(rs);
    } else if (json_array_size(errors) == 0) {
        abort(); /* a refusal names at least one problem */
    }
    json_decref(errors);
    json_decref(files);
    return 0;
}
