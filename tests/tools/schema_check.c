/* Runs the broker's validator over JSON Lines: one verdict per input line,
 * "valid" or "invalid <errors as JSON>". Used by the test that compares it with
 * an independent validator (ajv).
 * Usage: schema_check SCHEMA_DIR SCHEMA_ID < instances.jsonl */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SCHEMA_DIR SCHEMA_ID < instances.jsonl\n", argv[0]);
        return 2;
    }
    char err[1024];
    struct schema_set *set;
    if (schema_set_load(argv[1], &set, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t jerr;
        json_t *instance = json_loadb(line, (size_t)n, JSON_DECODE_ANY, &jerr);
        if (!instance) {
            printf("unparsable %s\n", jerr.text);
            rc = 1;
            continue;
        }
        json_t *errors = json_array();
        if (schema_validate(set, argv[2], instance, "", errors) == 0) {
            printf("valid\n");
        } else {
            char *text = json_dumps(errors, JSON_COMPACT);
            printf("invalid %s\n", text);
            free(text);
        }
        json_decref(errors);
        json_decref(instance);
    }
    free(line);
    schema_set_free(set);
    return rc;
}
