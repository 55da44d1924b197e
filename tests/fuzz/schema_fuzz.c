/* The schema validator over arbitrary JSON: the input is parsed as the
 * broker parses a body (JSON_REJECT_DUPLICATES) and validated against the
 * envelope and the review schema, as the whole event and as its data. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *instance = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!instance) return 0;
    json_t *errors = json_array();
    schema_validate(schemas, "cloudevent.v1.json", instance, "", errors);
    schema_validate(schemas, "review-completed.v1.json", instance, "", errors);
    /* as ingest_parse does: the data member against the review schema (only
     * once the envelope, which requires data, is valid: no NULL instance) */
    const json_t *review = json_object_get(instance, "data");
    if (review) schema_validate(schemas, "review-completed.v1.json", review, "/data", errors);
    /* every error has the documented shape */
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        if (!json_is_string(json_object_get(e, "pointer")) ||
            !json_is_string(json_object_get(e, "message")))
            abort();
    }
    json_decref(errors);
    json_decref(instance);
    return 0;
}
