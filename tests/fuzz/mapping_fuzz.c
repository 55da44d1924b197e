/* Mappings (event versions onto the canonical review): the input is JSON.
 * A two-item array [mapping, data] runs that mapping (checked or not: one
 * mapping_check refuses must fail in mapping_apply, never crash) over that
 * data; anything else is data of a sender, run through the mapping of the
 * test v2 fixture (tests/fixtures/schema-v2), as the broker runs a v2 event.
 * Every provenance entry of a result is looked up again. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fuzz_util.h"
#include "mapping.h"

#define FIXTURE "tests/fixtures/schema-v2/mappings/review-completed.v2.json"

static json_t *fixture(void)
{
    static json_t *mapping;
    if (mapping) return mapping;
    char repo[4096], path[4200];
    test_find_repo_dir(repo, sizeof(repo));
    snprintf(path, sizeof(path), "%s/" FIXTURE, repo);
    json_error_t jerr;
    mapping = json_load_file(path, 0, &jerr);
    if (!mapping) {
        fprintf(stderr, "fuzz: cannot read %s: %s\n", path, jerr.text);
        abort();
    }
    return mapping;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *input = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!input) return 0;
    const json_t *mapping = fixture(), *source = input;
    if (json_is_array(input) && json_array_size(input) == 2) {
        mapping = json_array_get(input, 0);
        source = json_array_get(input, 1);
    }
    char err[512];
    (void)mapping_check(mapping, "fuzz.json", err, sizeof(err));
    json_t *provenance = json_object(), *errors = json_array();
    json_t *built = mapping_apply(mapping, "fuzz.json", source, "/data", provenance, errors);
    const char *target;
    json_t *from;
    json_object_foreach(provenance, target, from)
    {
        const char *again = mapping_source_of(provenance, target);
        if (!again) abort(); /* what was recorded must be found */
    }
    (void)schemas;
    json_decref(built);
    json_decref(provenance);
    json_decref(errors);
    json_decref(input);
    return 0;
}
