/* matcher: the syntax of label matchers (the four operators, quoted values,
 * what is refused), regex compilation (malformed and too costly), anchored
 * matching, and lists of matchers given as JSON (errors with pointers, the
 * form the database evaluates). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "matcher.h"

/* Parses text, which must be a matcher, and checks its parts. */
static void expect_parsed(const char *text, const char *name, enum matcher_op op, const char *value)
{
    struct matcher m;
    char msg[512] = "";
    int rc = matcher_parse(text, &m, msg, sizeof(msg));
    ck_assert_msg(rc == 0, "'%s': expected a matcher, got an error: %s", text, msg);
    ck_assert_msg(strcmp(m.name, name) == 0, "'%s': expected the name '%s', got '%s'", text, name,
                  m.name);
    ck_assert_msg(m.op == op, "'%s': expected op %d, got %d", text, op, m.op);
    ck_assert_msg(strcmp(m.value, value) == 0, "'%s': expected the value '%s', got '%s'", text,
                  value, m.value);
    ck_assert_int_eq(m.compiled, 0);
    matcher_free(&m);
}

/* Parses text, which must be refused with a message holding want. */
static void expect_refused(const char *text, const char *want)
{
    struct matcher m;
    char msg[512] = "";
    int rc = matcher_parse(text, &m, msg, sizeof(msg));
    ck_assert_msg(rc == -1, "'%s': expected an error, got a matcher", text);
    ck_assert_msg(strstr(msg, want) != NULL, "'%s': expected a message with '%s', got '%s'", text,
                  want, msg);
    /* a refused text leaves nothing to free */
    ck_assert_ptr_null(m.name);
    ck_assert_ptr_null(m.value);
    ck_assert_int_eq(m.compiled, 0);
}

/* A matcher parsed and compiled from text (which must be valid). */
static struct matcher compiled(const char *text)
{
    struct matcher m;
    char msg[512] = "";
    ck_assert_msg(matcher_parse(text, &m, msg, sizeof(msg)) == 0, "'%s': %s", text, msg);
    ck_assert_msg(matcher_compile(&m, msg, sizeof(msg)) == 0, "'%s' does not compile: %s", text,
                  msg);
    return m;
}

static void expect_holds(const char *text, const char *value, int want)
{
    struct matcher m = compiled(text);
    int got = matcher_holds(&m, value);
    ck_assert_msg(got == want, "'%s' on %s%s%s: expected %s, got %s", text, value ? "'" : "",
                  value ? value : "NULL", value ? "'" : "", want ? "a match" : "no match",
                  got ? "a match" : "no match");
    matcher_free(&m);
}

START_TEST(test_parse_operators)
{
    expect_parsed("severity=warning", "severity", MATCH_EQ, "warning");
    expect_parsed("severity!=warning", "severity", MATCH_NE, "warning");
    expect_parsed("theme=~teamwork.*", "theme", MATCH_RE, "teamwork.*");
    expect_parsed("theme!~teamwork.*", "theme", MATCH_NRE, "teamwork.*");
    /* "=~" is one operator, not "=" then a value starting with "~" */
    expect_parsed("a=~~", "a", MATCH_RE, "~");
    expect_parsed("a==b", "a", MATCH_EQ, "=b");
    expect_parsed("seips_domain=tasks", "seips_domain", MATCH_EQ, "tasks");
    expect_parsed("_x1=y", "_x1", MATCH_EQ, "y");
}
END_TEST

START_TEST(test_parse_spaces_and_empty_values)
{
    expect_parsed("  theme  =  teamwork coordination  ", "theme", MATCH_EQ,
                  "teamwork coordination");
    expect_parsed("theme\t!=\tx", "theme", MATCH_NE, "x");
    expect_parsed("partner=", "partner", MATCH_EQ, "");
    expect_parsed("partner!=", "partner", MATCH_NE, "");
    expect_parsed("partner=\"\"", "partner", MATCH_EQ, "");
}
END_TEST

START_TEST(test_parse_quoted)
{
    expect_parsed("theme=\"teamwork\"", "theme", MATCH_EQ, "teamwork");
    /* \" and \\ stand for themselves */
    expect_parsed("a=\"say \\\"hi\\\"\"", "a", MATCH_EQ, "say \"hi\"");
    expect_parsed("a=\"back\\\\slash\"", "a", MATCH_EQ, "back\\slash");
    expect_parsed("a=\"\\\\\\\"\"", "a", MATCH_EQ, "\\\"");
    /* any other backslash is kept, so a regex needs no doubling */
    expect_parsed("jurisdiction=~\"US\\.TN\"", "jurisdiction", MATCH_RE, "US\\.TN");
    /* spaces inside the quotes are the value's; after them, ignored */
    expect_parsed("a = \"  x  \"  ", "a", MATCH_EQ, "  x  ");
    /* operators and quotes inside quotes are text */
    expect_parsed("a!~\"b=~c!=d\"", "a", MATCH_NRE, "b=~c!=d");
    /* a quote that does not open the value is part of it */
    expect_parsed("a=b\"c", "a", MATCH_EQ, "b\"c");
}
END_TEST

START_TEST(test_parse_refused)
{
    expect_refused("severity", "is not a matcher");
    expect_refused("severity warning", "is not a matcher");
    expect_refused("severity~warning", "is not a matcher");
    expect_refused("severity!warning", "is not a matcher");
    expect_refused("=warning", "is not a matcher");
    expect_refused("", "is not a matcher");
    expect_refused("   ", "is not a matcher");
    expect_refused("1a=b", "is not a matcher");
    expect_refused("a-b=c", "is not a matcher");
    /* the message shows the four forms */
    expect_refused("x", "label=value, label!=value, label=~regex or label!~regex");
    expect_refused("a=\"open", "no closing quote");
    expect_refused("a=\"", "no closing quote");
    expect_refused("a=\"ends in an escaped quote\\\"", "no closing quote");
    expect_refused("a=\"x\"y", "text after the closing quote");
    expect_refused("a=\"x\" \"y\"", "text after the closing quote");
}
END_TEST

/* The message names the text refused, even when it is long. */
START_TEST(test_parse_message_truncated_safely)
{
    char text[2000];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    struct matcher m;
    char msg[64];
    ck_assert_int_eq(matcher_parse(text, &m, msg, sizeof(msg)), -1);
    ck_assert_uint_eq(strlen(msg), sizeof(msg) - 1);
    ck_assert_msg(strncmp(msg, "'xxx", 4) == 0, "got '%s'", msg);
}
END_TEST

START_TEST(test_compile)
{
    struct matcher m;
    char msg[512] = "";
    /* = and != have nothing to compile */
    ck_assert_int_eq(matcher_parse("a=(", &m, msg, sizeof(msg)), 0);
    ck_assert_int_eq(matcher_compile(&m, msg, sizeof(msg)), 0);
    ck_assert_int_eq(m.compiled, 0);
    matcher_free(&m);

    m = compiled("a=~warn(ing)?|advisory");
    ck_assert_int_eq(m.compiled, 1);
    matcher_free(&m);
    m = compiled("a!~[[:alpha:]_]+");
    ck_assert_int_eq(m.compiled, 1);
    matcher_free(&m);
    /* a bounded repetition that unrolls to little is fine */
    m = compiled("a=~x{1,20}");
    matcher_free(&m);
}
END_TEST

/* Refused with a message naming the regex and holding want. */
static void expect_not_compiled(const char *text, const char *regex, const char *want)
{
    struct matcher m;
    char msg[512] = "";
    ck_assert_int_eq(matcher_parse(text, &m, msg, sizeof(msg)), 0);
    int rc = matcher_compile(&m, msg, sizeof(msg));
    ck_assert_msg(rc == -1, "'%s': expected the regex to be refused", text);
    ck_assert_msg(strstr(msg, want) != NULL, "'%s': expected a message with '%s', got '%s'", text,
                  want, msg);
    ck_assert_msg(strstr(msg, regex) != NULL, "'%s': the message does not name '%s': %s", text,
                  regex, msg);
    ck_assert_int_eq(m.compiled, 0);
    ck_assert_int_eq(matcher_holds(&m, "anything"), 0);
    matcher_free(&m);
}

START_TEST(test_compile_refused)
{
    expect_not_compiled("a=~(", "(", "invalid regular expression");
    expect_not_compiled("a!~x[", "x[", "invalid regular expression");
    expect_not_compiled("a=~[[:nope:]]", "[[:nope:]]", "invalid regular expression");
    /* what glibc's regcomp would take minutes or gigabytes over */
    expect_not_compiled("a=~(a+)*", "(a+)*", "too costly");
    expect_not_compiled("a!~(x*)+", "(x*)+", "too costly");
    expect_not_compiled("a=~x**", "x**", "too costly");
    expect_not_compiled("a=~i+++", "i+++", "too costly");
    expect_not_compiled("a=~(a|){5000}", "(a|){5000}", "too costly");
    expect_not_compiled("a=~(x{100}){100}", "(x{100}){100}", "too costly");
}
END_TEST

START_TEST(test_holds_equality)
{
    expect_holds("severity=warning", "warning", 1);
    expect_holds("severity=warning", "warnings", 0);
    expect_holds("severity=warning", "Warning", 0);
    expect_holds("severity!=warning", "warning", 0);
    expect_holds("severity!=warning", "watch", 1);
    /* a missing label counts as "" */
    expect_holds("partner=", NULL, 1);
    expect_holds("partner=", "", 1);
    expect_holds("partner=", "x", 0);
    expect_holds("partner!=", NULL, 0);
    expect_holds("partner!=x", NULL, 1);
}
END_TEST

START_TEST(test_holds_regex_anchored)
{
    /* the regex must match the whole value */
    expect_holds("severity=~warn", "warning", 0);
    expect_holds("severity=~warn", "warn", 1);
    expect_holds("severity=~warn", "prewarn", 0);
    expect_holds("severity=~warn.*", "warning", 1);
    expect_holds("severity!~warn", "warning", 1);
    expect_holds("severity!~warn.*", "warning", 0);
    /* anchoring holds around alternatives too */
    expect_holds("a=~a|b", "ab", 0);
    expect_holds("a=~a|ab", "ab", 1);
    expect_holds("a=~b|ab", "ab", 1);
    /* written anchors change nothing */
    expect_holds("a=~^x$", "x", 1);
    /* a missing label is "" */
    expect_holds("partner=~.*", NULL, 1);
    expect_holds("partner=~.+", NULL, 0);
    expect_holds("partner!~.+", NULL, 1);
    expect_holds("jurisdiction=~\"US\\.TN\"", "US.TN", 1);
    expect_holds("jurisdiction=~\"US\\.TN\"", "USxTN", 0);
}
END_TEST

/* The errors of a list as text, to show in a failure. The caller frees. */
static char *error_lines(const json_t *errors)
{
    char *text = json_dumps(errors, JSON_INDENT(2));
    ck_assert_ptr_nonnull(text);
    return text;
}

/* errors[i] has pointer and a message holding want. */
static void expect_error(const json_t *errors, size_t i, const char *pointer, const char *want)
{
    char *all = error_lines(errors);
    const json_t *e = json_array_get(errors, i);
    const char *got_pointer = json_string_value(json_object_get(e, "pointer"));
    const char *message = json_string_value(json_object_get(e, "message"));
    ck_assert_msg(e && got_pointer && message, "no error %zu; the errors:\n%s", i, all);
    ck_assert_msg(strcmp(got_pointer, pointer) == 0,
                  "error %zu: expected the pointer %s, got %s; the errors:\n%s", i, pointer,
                  got_pointer, all);
    ck_assert_msg(strstr(message, want) != NULL,
                  "error %zu: expected a message with '%s'; the errors:\n%s", i, want, all);
    ck_assert_uint_eq(json_object_size(e), 2);
    free(all);
}

START_TEST(test_list_parse)
{
    static const char *const names[] = {"severity", "rule", "theme", NULL};
    json_t *array = json_pack("[s,s,s]", "severity=~warning|critical", "rule=\"r 1\"", "theme!=x");
    json_t *errors = json_array();
    struct matcher_list l;
    ck_assert_int_eq(matcher_list_parse(array, names, "/filter", &l, errors), 0);
    ck_assert_uint_eq(json_array_size(errors), 0);
    ck_assert_uint_eq(l.count, 3);
    ck_assert_str_eq(l.items[0].name, "severity");
    ck_assert_int_eq(l.items[0].compiled, 1);
    ck_assert_str_eq(l.items[1].value, "r 1");
    ck_assert_int_eq(l.items[2].op, MATCH_NE);
    ck_assert_int_eq(matcher_holds(&l.items[0], "critical"), 1);
    matcher_list_free(&l);
    ck_assert_uint_eq(l.count, 0);
    ck_assert_ptr_null(l.items);
    json_decref(array);

    /* an empty array is a list of none (callers decide whether that is allowed) */
    array = json_array();
    ck_assert_int_eq(matcher_list_parse(array, names, "/filter", &l, errors), 0);
    ck_assert_uint_eq(l.count, 0);
    ck_assert_uint_eq(json_array_size(errors), 0);
    matcher_list_free(&l);
    json_decref(array);
    json_decref(errors);
}
END_TEST

START_TEST(test_list_parse_errors)
{
    static const char *const names[] = {"severity", "rule", NULL};
    json_t *array = json_pack("[s,i,s,s,s,s,n,s,s]", "severity=warning", 5, "nope", "theme=x",
                              "rule=~(", "rule=~(a+)*", "rule=\"x", "severity!=watch");
    json_t *errors = json_array();
    struct matcher_list l;
    ck_assert_int_eq(matcher_list_parse(array, names, "/matchers", &l, errors), -1);
    /* nothing is left to the caller */
    ck_assert_uint_eq(l.count, 0);
    ck_assert_ptr_null(l.items);
    char *all = error_lines(errors);
    ck_assert_msg(json_array_size(errors) == 7, "expected 7 errors, got:\n%s", all);
    free(all);
    expect_error(errors, 0, "/matchers/1", "must be a string");
    expect_error(errors, 1, "/matchers/2", "is not a matcher");
    expect_error(errors, 2, "/matchers/3", "unknown label 'theme'");
    expect_error(errors, 2, "/matchers/3", "severity, rule");
    expect_error(errors, 3, "/matchers/4", "invalid regular expression");
    expect_error(errors, 4, "/matchers/5", "too costly");
    expect_error(errors, 5, "/matchers/6", "must be a string");
    expect_error(errors, 6, "/matchers/7", "no closing quote");
    json_decref(errors);
    json_decref(array);

    /* the last one bad: the good ones before it are freed (ASan watches) */
    array = json_pack("[s,s,s]", "severity=~a", "rule=~b", "rule=\"");
    errors = json_array();
    ck_assert_int_eq(matcher_list_parse(array, names, "/filter", &l, errors), -1);
    ck_assert_uint_eq(json_array_size(errors), 1);
    expect_error(errors, 0, "/filter/2", "no closing quote");
    json_decref(errors);
    json_decref(array);
}
END_TEST

/* Without names, any label is allowed. */
START_TEST(test_list_parse_any_label)
{
    json_t *array = json_pack("[s,s]", "anything=x", "other_label!~y.*");
    json_t *errors = json_array();
    struct matcher_list l;
    ck_assert_int_eq(matcher_list_parse(array, NULL, "/filter", &l, errors), 0);
    ck_assert_uint_eq(l.count, 2);
    ck_assert_uint_eq(json_array_size(errors), 0);
    matcher_list_free(&l);
    json_decref(errors);
    json_decref(array);
}
END_TEST

START_TEST(test_list_parse_not_an_array)
{
    json_t *values[] = {json_object(), json_string("severity=warning"), json_null(),
                        json_integer(1)};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        json_t *errors = json_array();
        struct matcher_list l;
        ck_assert_int_eq(matcher_list_parse(values[i], NULL, "/matchers", &l, errors), -1);
        ck_assert_uint_eq(l.count, 0);
        ck_assert_ptr_null(l.items);
        ck_assert_uint_eq(json_array_size(errors), 1);
        /* the pointer of the array itself */
        expect_error(errors, 0, "/matchers", "must be an array of matcher strings");
        json_decref(errors);
        json_decref(values[i]);
    }
    /* NULL (the member is absent) is not an array either */
    json_t *errors = json_array();
    struct matcher_list l;
    ck_assert_int_eq(matcher_list_parse(NULL, NULL, "", &l, errors), -1);
    expect_error(errors, 0, "", "must be an array");
    json_decref(errors);
}
END_TEST

START_TEST(test_list_to_json)
{
    json_t *array = json_pack("[s,s,s,s]", "severity=warning", " theme != \"a \\\"b\\\"\" ",
                              "jurisdiction=~\"US\\.(TN|KY)\"", "kind!~need");
    json_t *errors = json_array();
    struct matcher_list l;
    ck_assert_int_eq(matcher_list_parse(array, NULL, "/filter", &l, errors), 0);
    json_t *got = matcher_list_to_json(&l);
    json_t *want = json_loads("[{\"name\": \"severity\", \"op\": \"=\", \"value\": \"warning\"},"
                              " {\"name\": \"theme\", \"op\": \"!=\", \"value\": \"a \\\"b\\\"\"},"
                              " {\"name\": \"jurisdiction\", \"op\": \"=~\","
                              "  \"value\": \"US\\\\.(TN|KY)\"},"
                              " {\"name\": \"kind\", \"op\": \"!~\", \"value\": \"need\"}]",
                              0, NULL);
    ck_assert_ptr_nonnull(want);
    char *got_text = json_dumps(got, JSON_COMPACT);
    char *want_text = json_dumps(want, JSON_COMPACT);
    ck_assert_msg(json_equal(got, want), "expected %s, got %s", want_text, got_text);
    /* the members in this order, as the migration's sn_matches reads them */
    ck_assert_str_eq(got_text, want_text);
    free(got_text);
    free(want_text);
    json_decref(want);
    json_decref(got);
    matcher_list_free(&l);

    /* an empty list is [] */
    got = matcher_list_to_json(&l);
    ck_assert(json_is_array(got));
    ck_assert_uint_eq(json_array_size(got), 0);
    json_decref(got);
    json_decref(errors);
    json_decref(array);
}
END_TEST

static Suite *matcher_suite(void)
{
    Suite *s = suite_create("matcher");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_operators);
    tcase_add_test(tc, test_parse_spaces_and_empty_values);
    tcase_add_test(tc, test_parse_quoted);
    tcase_add_test(tc, test_parse_refused);
    tcase_add_test(tc, test_parse_message_truncated_safely);
    suite_add_tcase(s, tc);
    tc = tcase_create("compile and match");
    tcase_add_test(tc, test_compile);
    tcase_add_test(tc, test_compile_refused);
    tcase_add_test(tc, test_holds_equality);
    tcase_add_test(tc, test_holds_regex_anchored);
    suite_add_tcase(s, tc);
    tc = tcase_create("lists");
    tcase_add_test(tc, test_list_parse);
    tcase_add_test(tc, test_list_parse_errors);
    tcase_add_test(tc, test_list_parse_any_label);
    tcase_add_test(tc, test_list_parse_not_an_array);
    tcase_add_test(tc, test_list_to_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(matcher_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
