/* Shared by the libFuzzer targets (each includes it once): the schema set,
 * loaded once per process by LLVMFuzzerInitialize from SN_SCHEMAS_DIR or the
 * repository's schemas/ (as the unit suites find it). A fuzzer without its
 * schemas would only test the error path, so a failure to load aborts. */
#ifndef SN_FUZZ_UTIL_H
#define SN_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "schema.h"
#include "test_schemas.h"

static inline struct schema_set *fuzz_load_schemas(void)
{
    char dir[4096], err[512];
    struct schema_set *set = NULL;
    test_find_schemas_dir(dir, sizeof(dir));
    if (schema_set_load(dir, &set, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, "fuzz: cannot load schemas from %s: %s\n", dir, err);
        abort();
    }
    return set;
}

static struct schema_set *schemas;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    schemas = fuzz_load_schemas();
    return 0;
}

#endif
