/* conf: defaults, the INI file parser, environment overrides, conf_set, and
 * the duration and address parsers. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* Config files live in run_dir, which main() removes at the end, also when a
 * failed test (which ends its process early) did not remove its file. */
static char run_dir[64];
static char tmp_path[128];

/* Writes content to a fresh temporary file whose name is left in tmp_path. */
static const char *write_temp(const char *content)
{
    snprintf(tmp_path, sizeof(tmp_path), "%s/conf-XXXXXX", run_dir);
    int fd = mkstemp(tmp_path);
    ck_assert_msg(fd >= 0, "mkstemp failed");
    size_t len = strlen(content);
    ck_assert_msg(write(fd, content, len) == (ssize_t)len, "short write to %s", tmp_path);
    close(fd);
    return tmp_path;
}

static void remove_temp(void)
{
    if (tmp_path[0]) unlink(tmp_path);
    tmp_path[0] = '\0';
}

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in: %s", (needle),          \
                  (haystack))

/* Loads content as a config file; returns the result and leaves the message in err. */
static enum sn_err load_text(struct conf *conf, const char *content, char *err, size_t errlen)
{
    err[0] = '\0';
    return conf_load_file(conf, write_temp(content), err, errlen);
}

START_TEST(test_defaults)
{
    struct conf c;
    conf_init(&c);
    ck_assert_str_eq(c.http_listen, "127.0.0.1:8080");
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_int_eq(c.shutdown_timeout_ms, 5000);
    ck_assert_int_eq(c.database_reconnect_max_ms, 30000);
    ck_assert_int_eq(c.embedded_kafka_brokers, 1);
    ck_assert_str_eq(c.embedded_pg_user, "postgres");
    ck_assert_str_eq(c.database_url, "");
    ck_assert_str_eq(c.kafka_bootstrap_servers, "");
    ck_assert_str_eq(c.embedded_pg_bindir, "");
    ck_assert_int_eq(c.http_max_body_size, 1048576);
    ck_assert_str_eq(c.schemas_dir, "");
    conf_free(&c);
    ck_assert_ptr_null(c.http_listen);
    ck_assert_ptr_null(c.log_level);
}
END_TEST

START_TEST(test_file_sections_comments_quotes)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c,
                               "# a comment\n"
                               "; another comment\n"
                               "\n"
                               "   [http]   \n"
                               "  listen   =   0.0.0.0:9090   # trailing comment\n"
                               "[log]\n"
                               "level=debug;trailing\n"
                               "[embedded]\n"
                               "pg_user = \"pg # not a comment\"\n"
                               "pg_bindir = \"/opt/pg bin ; x\" ; a comment\n"
                               "kafka_brokers = 3\n"
                               "\t[ shutdown ]\n"
                               "timeout = 250ms\n"
                               "[database]\n"
                               "reconnect_max = 2m\n"
                               "url = host=/tmp dbname=x\n"
                               "[kafka]\n"
                               "bootstrap_servers = a:1,b:2\n",
                               err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed (%d): %s", rc, err);
    ck_assert_str_eq(c.http_listen, "0.0.0.0:9090");
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_str_eq(c.embedded_pg_user, "pg # not a comment");
    ck_assert_str_eq(c.embedded_pg_bindir, "/opt/pg bin ; x");
    ck_assert_int_eq(c.embedded_kafka_brokers, 3);
    ck_assert_int_eq(c.shutdown_timeout_ms, 250);
    ck_assert_int_eq(c.database_reconnect_max_ms, 120000);
    ck_assert_str_eq(c.database_url, "host=/tmp dbname=x");
    ck_assert_str_eq(c.kafka_bootstrap_servers, "a:1,b:2");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_later_value_wins)
{
    struct conf c;
    char err[512];
    conf_init(&c);
    enum sn_err rc =
        load_text(&c, "[log]\nlevel = warn\n[http]\nlisten=1.2.3.4:5\n[log]\nlevel = error\n", err,
                  sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed: %s", err);
    ck_assert_str_eq(c.log_level, "error");
    ck_assert_str_eq(c.http_listen, "1.2.3.4:5");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_unknown_key)
{
    struct conf c;
    char err[1024], where[256];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[http]\n# comment\nlistne = 0.0.0.0:1\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "http.listne");
    snprintf(where, sizeof(where), "%s:3", tmp_path);
    ck_assert_contains(err, where);
    /* the message lists what the section does have */
    ck_assert_contains(err, "http.listen");
    ck_assert_str_eq(c.http_listen, "127.0.0.1:8080");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_unknown_section)
{
    struct conf c;
    char err[1024], where[256];
    conf_init(&c);
    enum sn_err rc =
        load_text(&c, "[http]\nlisten = 1.2.3.4:5\n[htp]\nlisten = 1.1.1.1:1\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "[htp]");
    ck_assert_contains(err, "unknown section");
    snprintf(where, sizeof(where), "%s:3", tmp_path);
    ck_assert_contains(err, where);
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_key_before_section)
{
    struct conf c;
    char err[1024], where[256];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "# header\nlevel = debug\n[log]\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "'level'");
    ck_assert_contains(err, "before any [section]");
    snprintf(where, sizeof(where), "%s:2", tmp_path);
    ck_assert_contains(err, where);
    ck_assert_str_eq(c.log_level, "info");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_bad_int)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[embedded]\nkafka_brokers = 10\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "embedded.kafka_brokers");
    ck_assert_contains(err, "'10'");
    ck_assert_contains(err, "an integer from 1 to 9");
    ck_assert_int_eq(c.embedded_kafka_brokers, 1);
    remove_temp();

    rc = load_text(&c, "[embedded]\nkafka_brokers = 2x\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "'2x'");
    ck_assert_contains(err, "an integer from 1 to 9");
    remove_temp();

    rc = load_text(&c, "[embedded]\nkafka_brokers =\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "embedded.kafka_brokers");
    ck_assert_int_eq(c.embedded_kafka_brokers, 1);
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_bad_duration)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[shutdown]\ntimeout = 5\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "shutdown.timeout");
    ck_assert_contains(err, "'5'");
    ck_assert_contains(err, "a duration such as");
    ck_assert_contains(err, "from 0ms to 9000ms");
    remove_temp();

    /* a well-formed duration outside the key's range */
    rc = load_text(&c, "[database]\nreconnect_max = 50ms\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "database.reconnect_max");
    ck_assert_contains(err, "from 100ms to 3600000ms");
    ck_assert_int_eq(c.database_reconnect_max_ms, 30000);
    ck_assert_int_eq(c.shutdown_timeout_ms, 5000);
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_bad_choice)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[log]\nlevel = verbose\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "log.level");
    ck_assert_contains(err, "'verbose'");
    ck_assert_contains(err, "one of debug, info, warn, error");
    ck_assert_str_eq(c.log_level, "info");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_bad_address)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[http]\nlisten = localhost\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "http.listen");
    ck_assert_contains(err, "'localhost'");
    ck_assert_contains(err, "host:port (or [ipv6]:port), port 0 to 65535");
    ck_assert_str_eq(c.http_listen, "127.0.0.1:8080");
    remove_temp();

    rc = load_text(&c, "[http]\nlisten = 127.0.0.1:70000\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "'127.0.0.1:70000'");
    ck_assert_str_eq(c.http_listen, "127.0.0.1:8080");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_bad_conninfo)
{
    struct conf c;
    char err[1024], where[256];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[database]\nurl = host='x\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "database.url");
    ck_assert_contains(err, "unterminated");
    ck_assert_contains(err, "a libpq connection string");
    snprintf(where, sizeof(where), "%s:2", tmp_path);
    ck_assert_contains(err, where);
    /* libpq's trailing newline is cut off */
    ck_assert_msg(strchr(err, '\n') == NULL, "message has a newline: %s", err);
    ck_assert_str_eq(c.database_url, "");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_malformed_lines)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[http\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "malformed section header");
    remove_temp();

    rc = load_text(&c, "[]\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "malformed section header");
    remove_temp();

    rc = load_text(&c, "[log]\nlevel debug\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "expected key = value");
    ck_assert_contains(err, "level debug");
    remove_temp();

    rc = load_text(&c, "[embedded]\npg_user = \"abc\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "unterminated quoted value");
    ck_assert_contains(err, "embedded.pg_user");
    remove_temp();

    rc = load_text(&c, "[embedded]\npg_user = \"abc\" def\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_str_eq(c.embedded_pg_user, "postgres");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_file_missing)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = conf_load_file(&c, "/nonexistent/sn-broker.conf", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "/nonexistent/sn-broker.conf");
    ck_assert_contains(err, "cannot open");
    conf_free(&c);
}
END_TEST

START_TEST(test_env_overrides)
{
    struct conf c;
    char err[1024] = "";
    char *envp[] = {"PATH=/usr/bin",
                    "SN_HTTP_LISTEN=0.0.0.0:1234",
                    "SN_SHUTDOWN_TIMEOUT=1s",
                    "SN_EMBEDDED_PG_USER=pguser",
                    "SN_EMBEDDED_KAFKA_BROKERS=4",
                    "SN_URL=http://localhost:8080",
                    "SN_TOKEN=sn_abc",
                    "SN_NOEQUALS",
                    NULL};
    conf_init(&c);
    enum sn_err rc = conf_load_env(&c, envp, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "conf_load_env failed: %s", err);
    ck_assert_str_eq(c.http_listen, "0.0.0.0:1234");
    ck_assert_int_eq(c.shutdown_timeout_ms, 1000);
    ck_assert_str_eq(c.embedded_pg_user, "pguser");
    ck_assert_int_eq(c.embedded_kafka_brokers, 4);
    /* untouched keys keep their defaults */
    ck_assert_str_eq(c.log_level, "info");
    conf_free(&c);
}
END_TEST

START_TEST(test_env_overrides_file)
{
    struct conf c;
    char err[1024];
    char *envp[] = {"SN_LOG_LEVEL=error", NULL};
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[log]\nlevel = debug\n", err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed: %s", err);
    ck_assert_str_eq(c.log_level, "debug");
    rc = conf_load_env(&c, envp, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "conf_load_env failed: %s", err);
    ck_assert_str_eq(c.log_level, "error");
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_env_bad_value)
{
    struct conf c;
    char err[1024] = "";
    char *envp[] = {"SN_LOG_LEVEL=bogus", NULL};
    conf_init(&c);
    enum sn_err rc = conf_load_env(&c, envp, err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "log.level");
    ck_assert_contains(err, "SN_LOG_LEVEL");
    ck_assert_contains(err, "'bogus'");
    ck_assert_contains(err, "one of debug, info, warn, error");
    ck_assert_str_eq(c.log_level, "info");
    conf_free(&c);
}
END_TEST

START_TEST(test_env_unknown_key_in_known_section)
{
    struct conf c;
    char err[1024] = "";
    char *envp[] = {"SN_HTTP_LISTNE=0.0.0.0:1", NULL};
    conf_init(&c);
    enum sn_err rc = conf_load_env(&c, envp, err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "http.listne");
    ck_assert_contains(err, "SN_HTTP_LISTNE");
    ck_assert_contains(err, "http.listen");
    ck_assert_str_eq(c.http_listen, "127.0.0.1:8080");
    conf_free(&c);
}
END_TEST

START_TEST(test_set)
{
    struct conf c;
    char err[1024] = "";
    conf_init(&c);
    ck_assert_int_eq(conf_set(&c, "log.level", "warn", err, sizeof(err)), SN_OK);
    ck_assert_str_eq(c.log_level, "warn");
    ck_assert_int_eq(conf_set(&c, "database.url", "postgresql://u@h:5/db", err, sizeof(err)),
                     SN_OK);
    ck_assert_str_eq(c.database_url, "postgresql://u@h:5/db");
    ck_assert_int_eq(conf_set(&c, "database.reconnect_max", "1h", err, sizeof(err)), SN_OK);
    ck_assert_int_eq(c.database_reconnect_max_ms, 3600000);
    ck_assert_int_eq(conf_set(&c, "http.listen", "[::1]:0", err, sizeof(err)), SN_OK);
    ck_assert_str_eq(c.http_listen, "[::1]:0");

    ck_assert_int_eq(conf_set(&c, "log.level", "loud", err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "log.level");
    ck_assert_str_eq(c.log_level, "warn");

    ck_assert_int_eq(conf_set(&c, "loglevel", "warn", err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "'loglevel'");
    ck_assert_contains(err, "section.key");

    ck_assert_int_eq(conf_set(&c, "http.port", "80", err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "http.port");

    ck_assert_int_eq(conf_set(&c, "database.url", "host='x", err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "database.url");
    ck_assert_str_eq(c.database_url, "postgresql://u@h:5/db");
    conf_free(&c);
}
END_TEST

START_TEST(test_print_keys)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    conf_print_keys(f);
    fclose(f);
    ck_assert_contains(text, "http.listen (SN_HTTP_LISTEN, default \"127.0.0.1:8080\")");
    ck_assert_contains(text, "log.level (SN_LOG_LEVEL, default \"info\")");
    ck_assert_contains(text, "shutdown.timeout (SN_SHUTDOWN_TIMEOUT, default \"5s\")");
    ck_assert_contains(text, "embedded.kafka_brokers (SN_EMBEDDED_KAFKA_BROKERS, default \"1\")");
    ck_assert_contains(text, "database.reconnect_max");
    ck_assert_contains(text, "kafka.bootstrap_servers");
    ck_assert_contains(text, "embedded.pg_bindir");
    ck_assert_contains(text, "embedded.pg_user");
    ck_assert_contains(text, "database.url");
    free(text);
}
END_TEST

START_TEST(test_parse_duration)
{
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"250ms", 250},        {"5s", 5000},           {"10m", 600000}, {"12h", 43200000},
        {"90d", 7776000000LL}, {"26w", 15724800000LL}, {"0ms", 0},      {"1s", 1000},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(good); i++) {
        int64_t ms = -12345;
        int rc = conf_parse_duration(good[i].text, &ms);
        ck_assert_msg(rc == 0, "conf_parse_duration(\"%s\") returned %d, expected 0", good[i].text,
                      rc);
        ck_assert_msg(ms == good[i].ms, "conf_parse_duration(\"%s\"): expected %lld, got %lld",
                      good[i].text, (long long)good[i].ms, (long long)ms);
    }
    static const char *const bad[] = {"",
                                      "5",
                                      "-5s",
                                      "5x",
                                      "s",
                                      "ms",
                                      "5 s",
                                      " 5s",
                                      "1.5s",
                                      "5S",
                                      "5sec",
                                      "5s ",
                                      "+5s",
                                      "99999999999999999999s",
                                      "9223372036854775807w"};
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        int64_t ms = -12345;
        int rc = conf_parse_duration(bad[i], &ms);
        ck_assert_msg(rc == -1, "conf_parse_duration(\"%s\") returned %d, expected -1", bad[i], rc);
        ck_assert_msg(ms == -12345, "conf_parse_duration(\"%s\") wrote %lld on failure", bad[i],
                      (long long)ms);
    }
}
END_TEST

START_TEST(test_parse_size)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } good[] = {
        {"0", 0},          {"1048576", 1048576},   {"512KiB", 524288},
        {"1MiB", 1048576}, {"3GiB", 3221225472LL},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(good); i++) {
        int64_t bytes = -12345;
        int rc = conf_parse_size(good[i].text, &bytes);
        ck_assert_msg(rc == 0, "conf_parse_size(\"%s\") returned %d, expected 0", good[i].text, rc);
        ck_assert_msg(bytes == good[i].bytes, "conf_parse_size(\"%s\"): expected %lld, got %lld",
                      good[i].text, (long long)good[i].bytes, (long long)bytes);
    }
    static const char *const bad[] = {"",
                                      "KiB",
                                      "-1",
                                      "1kb",
                                      "1 MiB",
                                      "1.5MiB",
                                      "1MB",
                                      "1mib",
                                      "1MiB ",
                                      "+1",
                                      "1TiB",
                                      "99999999999999999999",
                                      "9223372036854775807GiB"};
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        int64_t bytes = -12345;
        int rc = conf_parse_size(bad[i], &bytes);
        ck_assert_msg(rc == -1, "conf_parse_size(\"%s\") returned %d, expected -1", bad[i], rc);
        ck_assert_msg(bytes == -12345, "conf_parse_size(\"%s\") wrote %lld on failure", bad[i],
                      (long long)bytes);
    }
}
END_TEST

START_TEST(test_file_size_key)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc = load_text(&c, "[http]\nmax_body_size = 64KiB\n", err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed: %s", err);
    ck_assert_int_eq(c.http_max_body_size, 65536);
    remove_temp();

    rc = load_text(&c, "[http]\nmax_body_size = 100\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "http.max_body_size");
    ck_assert_contains(err, "'100'");
    ck_assert_contains(err, "from 1024 to 1073741824 bytes");
    remove_temp();

    rc = load_text(&c, "[http]\nmax_body_size = 1MB\n", err, sizeof(err));
    ck_assert_int_eq(rc, SN_ERR_CONF);
    ck_assert_contains(err, "KiB, MiB or GiB");
    ck_assert_int_eq(c.http_max_body_size, 65536);
    conf_free(&c);
    remove_temp();
}
END_TEST

START_TEST(test_parse_address)
{
    char host[256];
    int port = -1;
    ck_assert_int_eq(conf_parse_address("127.0.0.1:8080", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 8080);

    ck_assert_int_eq(conf_parse_address("[::1]:0", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 0);

    ck_assert_int_eq(conf_parse_address("[fe80::1%eth0]:443", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "fe80::1%eth0");
    ck_assert_int_eq(port, 443);

    ck_assert_int_eq(conf_parse_address("localhost:65535", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "localhost");
    ck_assert_int_eq(port, 65535);

    static const char *const bad[] = {
        "localhost:65536",
        "localhost:-1",
        "localhost:",
        "localhost",
        ":80",
        "::1",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[]:80",
        "[::1:80",
        "host:80x",
        "host:0x50",
        "",
        "a:b:80",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        int rc = conf_parse_address(bad[i], host, sizeof(host), &port);
        ck_assert_msg(rc == -1, "conf_parse_address(\"%s\") returned %d, expected -1", bad[i], rc);
    }

    /* a host longer than the buffer is refused, not truncated */
    char small[4];
    ck_assert_int_eq(conf_parse_address("abcd:80", small, sizeof(small), &port), -1);
    ck_assert_int_eq(conf_parse_address("abc:80", small, sizeof(small), &port), 0);
    ck_assert_str_eq(small, "abc");
}
END_TEST

/* A quoted value followed by a comment that itself holds a double quote: the
 * value ends at its own closing quote; see the report (conf.c, line 295). */
START_TEST(test_quoted_value_then_comment_with_quote)
{
    struct conf c;
    char err[1024];
    conf_init(&c);
    enum sn_err rc =
        load_text(&c, "[embedded]\npg_user = \"pg\" # not the \"default\"\n", err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed: %s", err);
    ck_assert_str_eq(c.embedded_pg_user, "pg");
    remove_temp();

    rc = load_text(&c, "[embedded]\npg_user = \"pg\" # the \"usual\" user\n", err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "load failed: %s", err);
    ck_assert_str_eq(c.embedded_pg_user, "pg");
    conf_free(&c);
    remove_temp();
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_print_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_test(tc, test_file_sections_comments_quotes);
    tcase_add_test(tc, test_file_later_value_wins);
    tcase_add_test(tc, test_file_unknown_key);
    tcase_add_test(tc, test_file_unknown_section);
    tcase_add_test(tc, test_file_key_before_section);
    tcase_add_test(tc, test_file_bad_int);
    tcase_add_test(tc, test_file_bad_duration);
    tcase_add_test(tc, test_file_bad_choice);
    tcase_add_test(tc, test_file_bad_address);
    tcase_add_test(tc, test_file_bad_conninfo);
    tcase_add_test(tc, test_file_malformed_lines);
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_file_size_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("env");
    tcase_add_test(tc, test_env_overrides);
    tcase_add_test(tc, test_env_overrides_file);
    tcase_add_test(tc, test_env_bad_value);
    tcase_add_test(tc, test_env_unknown_key_in_known_section);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_test(tc, test_set);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers");
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_address);
    suite_add_tcase(s, tc);

    /* regressions: bugs found and fixed */
    {
        tc = tcase_create("regressions");
        tcase_add_test(tc, test_quoted_value_then_comment_with_quote);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    snprintf(run_dir, sizeof(run_dir), "/tmp/sn-conf-test-XXXXXX");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", run_dir);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
