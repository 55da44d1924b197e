/* Helpers shared by unit suites. Include after <check.h>. */
#ifndef SN_TEST_UTIL_H
#define SN_TEST_UTIL_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static inline int test_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The n strings of list, sorted (list is sorted in place), each quoted on a
 * line of its own: a stable text to compare sets of pointers or codes. The
 * caller frees. */
static inline char *test_sorted_lines(const char **list, size_t n)
{
    qsort(list, n, sizeof(*list), test_cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(list[i]) + 3;
    char *text = calloc(1, len);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < n; i++) {
        strcat(text, "'");
        strcat(text, list[i]);
        strcat(text, "'\n");
    }
    return text;
}

/* text as JSON (flags: json_loads()'s); fails the test when it is not JSON. */
static inline json_t *test_json_parse(const char *text, size_t flags)
{
    json_error_t jerr;
    json_t *v = json_loads(text, flags, &jerr);
    ck_assert_msg(v != NULL, "bad JSON in the test: %s: %s", jerr.text, text);
    return v;
}

/* v as compact JSON with sorted keys (any value); the caller frees. */
static inline char *test_json_dump(const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(text);
    return text;
}

#endif
