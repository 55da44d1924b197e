/* Helpers shared by unit suites. Include after <check.h>. */
#ifndef SN_TEST_UTIL_H
#define SN_TEST_UTIL_H

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

#endif
