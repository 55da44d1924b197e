/* log: one JSON object per line, levels, lazy arguments, invalid UTF-8. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int pipe_fds[2] = {-1, -1};

static void setup(void)
{
    ck_assert_int_eq(pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC), 0);
    log_set_fd(pipe_fds[1]);
    log_set_level(SN_LOG_INFO);
}

static void teardown(void)
{
    log_set_fd(2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* Everything written so far; the caller frees. */
static char *drain(void)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = read(pipe_fds[0], buf + len, cap - len - 1);
        if (n <= 0) {
            ck_assert_msg(n == 0 || errno == EAGAIN, "read from log pipe: %s", strerror(errno));
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* The single line written so far, parsed; fails unless exactly one line was written. */
static json_t *one_line(void)
{
    char *text = drain();
    ck_assert_msg(count_lines(text) == 1, "expected exactly one line, got %d: %s",
                  count_lines(text), text);
    ck_assert_msg(text[strlen(text) - 1] == '\n', "line does not end in a newline: %s", text);
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    ck_assert_msg(obj != NULL, "line is not JSON (%s): %s", jerr.text, text);
    ck_assert_msg(json_is_object(obj), "line is not a JSON object: %s", text);
    free(text);
    return obj;
}

static const char *str_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "member '%s' missing or not a string", key);
    return json_string_value(v);
}

START_TEST(test_line_format)
{
    /* time(2) may read a coarse clock that lags gettimeofday(2) by a tick */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    time_t before = now.tv_sec;
    log_info(json_pack("{s:s,s:i,s:b}", "component", "test", "count", 42, "flag", 1), "hello %s %d",
             "world", 7);
    clock_gettime(CLOCK_REALTIME, &now);
    time_t after = now.tv_sec;

    char *text = drain();
    ck_assert_msg(strncmp(text, "{\"ts\":\"", 7) == 0, "line should start with ts: %s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "not one line: %s", text);
    json_t *obj = json_loads(text, 0, NULL);
    ck_assert_msg(obj != NULL, "not JSON: %s", text);
    free(text);

    ck_assert_str_eq(str_member(obj, "level"), "info");
    ck_assert_str_eq(str_member(obj, "msg"), "hello world 7");
    ck_assert_str_eq(str_member(obj, "component"), "test");
    ck_assert_int_eq(json_integer_value(json_object_get(obj, "count")), 42);
    ck_assert_msg(json_is_true(json_object_get(obj, "flag")), "flag should be true");
    ck_assert_int_eq(json_object_size(obj), 6);

    const char *ts = str_member(obj, "ts");
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int match = regexec(&re, ts, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(match == 0, "ts is not RFC 3339 UTC with milliseconds: %s", ts);

    /* the timestamp is now, in UTC */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    ck_assert_ptr_nonnull(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    ck_assert_msg(t >= before && t <= after, "ts %s is not between %lld and %lld", ts,
                  (long long)before, (long long)after);
    json_decref(obj);
}
END_TEST

START_TEST(test_null_fields)
{
    log_error(NULL, "plain");
    json_t *obj = one_line();
    ck_assert_str_eq(str_member(obj, "level"), "error");
    ck_assert_str_eq(str_member(obj, "msg"), "plain");
    ck_assert_int_eq(json_object_size(obj), 3);
    json_decref(obj);
}
END_TEST

START_TEST(test_fields_do_not_replace_core_members)
{
    log_warn(
        json_pack("{s:s,s:s,s:s,s:s}", "msg", "evil", "level", "debug", "ts", "never", "k", "v"),
        "real");
    json_t *obj = one_line();
    ck_assert_str_eq(str_member(obj, "msg"), "real");
    ck_assert_str_eq(str_member(obj, "level"), "warn");
    ck_assert_str_ne(str_member(obj, "ts"), "never");
    ck_assert_str_eq(str_member(obj, "k"), "v");
    json_decref(obj);
}
END_TEST

START_TEST(test_one_line_per_call)
{
    log_info(NULL, "first");
    log_warn(NULL, "two\nlines");
    log_error(NULL, "third");
    char *text = drain();
    ck_assert_msg(count_lines(text) == 3, "expected 3 lines, got %d: %s", count_lines(text), text);
    char *save = NULL;
    const char *expect[] = {"first", "two\nlines", "third"};
    int i = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *obj = json_loads(line, 0, NULL);
        ck_assert_msg(obj != NULL, "line %d is not JSON: %s", i, line);
        ck_assert_int_lt(i, 3);
        ck_assert_str_eq(str_member(obj, "msg"), expect[i]);
        json_decref(obj);
        i++;
    }
    ck_assert_int_eq(i, 3);
    free(text);
}
END_TEST

static int fields_built;

static json_t *counted_fields(void)
{
    fields_built++;
    return json_pack("{s:i}", "n", fields_built);
}

START_TEST(test_below_level_not_written_nor_evaluated)
{
    int args_evaluated = 0;
    fields_built = 0;
    log_set_level(SN_LOG_WARN);
    log_debug(counted_fields(), "debug %d", ++args_evaluated);
    log_info(counted_fields(), "info %d", ++args_evaluated);
    char *text = drain();
    ck_assert_msg(text[0] == '\0', "lines below the level were written: %s", text);
    free(text);
    ck_assert_msg(args_evaluated == 0, "format arguments of skipped lines were evaluated %d times",
                  args_evaluated);
    ck_assert_msg(fields_built == 0, "fields of skipped lines were built %d times", fields_built);

    log_warn(counted_fields(), "warn %d", ++args_evaluated);
    ck_assert_int_eq(args_evaluated, 1);
    ck_assert_int_eq(fields_built, 1);
    json_t *obj = one_line();
    ck_assert_str_eq(str_member(obj, "level"), "warn");
    ck_assert_str_eq(str_member(obj, "msg"), "warn 1");
    ck_assert_int_eq(json_integer_value(json_object_get(obj, "n")), 1);
    json_decref(obj);

    log_error(NULL, "error %d", ++args_evaluated);
    ck_assert_int_eq(args_evaluated, 2);
    obj = one_line();
    ck_assert_str_eq(str_member(obj, "level"), "error");
    ck_assert_str_eq(str_member(obj, "msg"), "error 2");
    json_decref(obj);

    log_set_level(SN_LOG_DEBUG);
    log_debug(NULL, "now visible");
    obj = one_line();
    ck_assert_str_eq(str_member(obj, "level"), "debug");
    json_decref(obj);
}
END_TEST

START_TEST(test_level_parse_name)
{
    static const struct {
        const char *name;
        enum log_level level;
    } levels[] = {{"debug", SN_LOG_DEBUG},
                  {"info", SN_LOG_INFO},
                  {"warn", SN_LOG_WARN},
                  {"error", SN_LOG_ERROR}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        enum log_level l = (enum log_level) - 1;
        ck_assert_msg(log_level_parse(levels[i].name, &l) == 0, "cannot parse %s", levels[i].name);
        ck_assert_int_eq(l, levels[i].level);
        ck_assert_str_eq(log_level_name(l), levels[i].name);
    }
    enum log_level l = SN_LOG_ERROR;
    ck_assert_int_eq(log_level_parse("verbose", &l), -1);
    ck_assert_int_eq(log_level_parse("INFO", &l), -1);
    ck_assert_int_eq(log_level_parse("", &l), -1);
    ck_assert_int_eq(l, SN_LOG_ERROR);
    ck_assert_str_eq(log_level_name((enum log_level)17), "unknown");
}
END_TEST

START_TEST(test_invalid_utf8_message)
{
    log_info(NULL, "bad \xff\xfe bytes");
    json_t *obj = one_line();
    const char *msg = str_member(obj, "msg");
    ck_assert_msg(msg[0] != '\0', "msg is empty");
    ck_assert_str_eq(str_member(obj, "level"), "info");
    json_decref(obj);

    /* invalid bytes that arrive through an argument */
    const char bad[] = {'x', (char)0xc3, '(', '\0'};
    log_warn(json_pack("{s:s}", "k", "v"), "value %s", bad);
    obj = one_line();
    ck_assert_msg(str_member(obj, "msg")[0] != '\0', "msg is empty");
    ck_assert_str_eq(str_member(obj, "k"), "v");
    json_decref(obj);
}
END_TEST

START_TEST(test_long_message_is_cut_not_lost)
{
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info(NULL, "%s", big);
    json_t *obj = one_line();
    const char *msg = str_member(obj, "msg");
    ck_assert_msg(strlen(msg) >= 1000 && strspn(msg, "a") == strlen(msg),
                  "expected a prefix of the message, got %zu bytes", strlen(msg));
    json_decref(obj);
}
END_TEST

/* A long valid UTF-8 message that the logger's buffer cuts in the middle of a
 * character should keep its valid prefix; see the report (log.c, line 76). */
START_TEST(test_long_utf8_message_cut_mid_character)
{
    char big[2100];
    memset(big, 'a', 2046);
    strcpy(big + 2046, "\xc3\xa9 and more"); /* U+00E9 straddles byte 2047 */
    log_info(NULL, "%s", big);
    json_t *obj = one_line();
    const char *msg = str_member(obj, "msg");
    ck_assert_msg(strncmp(msg, "aaaaaaaaaa", 10) == 0,
                  "the valid prefix of the message was lost; msg is: %s", msg);
    json_decref(obj);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("lines");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_line_format);
    tcase_add_test(tc, test_null_fields);
    tcase_add_test(tc, test_fields_do_not_replace_core_members);
    tcase_add_test(tc, test_one_line_per_call);
    tcase_add_test(tc, test_below_level_not_written_nor_evaluated);
    tcase_add_test(tc, test_level_parse_name);
    tcase_add_test(tc, test_invalid_utf8_message);
    tcase_add_test(tc, test_long_message_is_cut_not_lost);
    suite_add_tcase(s, tc);

    /* regressions: bugs found and fixed */
    {
        tc = tcase_create("regressions");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_long_utf8_message_cut_mid_character);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
