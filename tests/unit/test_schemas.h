/* For unit suites that read the repository's files (schemas/, deploy/rules/). */
#ifndef SN_TEST_SCHEMAS_H
#define SN_TEST_SCHEMAS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The repository root: SN_SOURCE_DIR, else the working directory when it holds
 * schemas/ (tests run from the root), else the nearest parent directory of the
 * binary that does. */
static inline void test_find_repo_dir(char *out, size_t len)
{
    const char *env = getenv("SN_SOURCE_DIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    snprintf(out, len, ".");
    if (access("schemas/cloudevent.v1.json", R_OK) == 0) return;
    char exe[3000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return;
    exe[n] = '\0';
    char *slash;
    while ((slash = strrchr(exe, '/')) != NULL) {
        *slash = '\0';
        char probe[4096];
        snprintf(probe, sizeof(probe), "%s/schemas/cloudevent.v1.json", exe);
        if (access(probe, R_OK) == 0) {
            snprintf(out, len, "%s", exe);
            return;
        }
    }
}

/* SN_SCHEMAS_DIR, else the repository's schemas/. */
static inline void test_find_schemas_dir(char *out, size_t len)
{
    const char *env = getenv("SN_SCHEMAS_DIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    char repo[3000];
    test_find_repo_dir(repo, sizeof(repo));
    snprintf(out, len, "%s/schemas", repo);
}

/* The README's example review (schemas/review-completed.v1.json), as a
 * string literal to embed. */
#define TEST_REVIEW_V1                                                                             \
    "{\"review_id\": \"CIR-2026-0042\", \"jurisdiction\": \"US-TN\","                              \
    " \"finalized_at\": \"2026-03-02T15:00:00Z\","                                                 \
    " \"incident\": {\"type\": \"fatality\", \"cause\": \"suid\", \"month\": \"2026-01\","         \
    "  \"child_age_band\": \"0-3\", \"prior_agency_involvement\": true},"                          \
    " \"improvement_opportunities\": ["                                                            \
    "  {\"theme\": \"teamwork_coordination\", \"subtheme\": \"joint_investigation\","              \
    "   \"partner\": \"law_enforcement\", \"seips_domain\": \"organization\","                     \
    "   \"priority\": \"high\", \"summary\": \"Free text for the jurisdiction's own use.\"},"      \
    "  {\"theme\": \"economic_support\", \"subtheme\": \"concrete_supports\","                     \
    "   \"seips_domain\": \"external_environment\", \"priority\": \"medium\"}],"                   \
    " \"family_needs\": [\"economic_support\", \"safe_sleep\"]}"

#endif
