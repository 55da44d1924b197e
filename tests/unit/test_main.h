/* The main() of unit suites that read the repository's schemas and write
 * files: load schemas/, make a scratch directory, run the suite, clean up. */
#ifndef SN_TEST_MAIN_H
#define SN_TEST_MAIN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "schema.h"
#include "test_schemas.h"

/* check (may be NULL) runs after the schemas are loaded and may refuse to go
 * on (returning nonzero), e.g. when a reference file is missing. run_dir
 * receives the scratch directory (64 bytes), removed at the end. */
static inline int test_main_with_schemas(Suite *suite, const char *name,
                                         struct schema_set **schemas, char *run_dir,
                                         int (*check)(void))
{
    char dir[4096], err[1024];
    test_find_schemas_dir(dir, sizeof(dir));
    if (schema_set_load(dir, schemas, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, "cannot load the schemas in %s: %s\n", dir, err);
        return EXIT_FAILURE;
    }
    snprintf(run_dir, 64, "/tmp/sn-%s-test-XXXXXX", name);
    if ((check && check() != 0) || !mkdtemp(run_dir)) {
        if (!check) perror("mkdtemp");
        schema_set_free(*schemas);
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    schema_set_free(*schemas);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", run_dir);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
