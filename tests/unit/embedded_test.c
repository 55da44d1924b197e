/* embedded: pid files, conninfo quoting, opening DIR (lock, cluster location,
 * stale leftovers) and the atomic file writes. embedded_start (initdb and
 * postgres) is left to the integration tests. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "embedded.h"
#include "log.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

/* Every test's DIR lives in run_dir, which main() removes at the end, also
 * when a failed test (which ends its process early) skipped its teardown. */
static char run_dir[64];
static char dir[96];
static int devnull = -1;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s/t-XXXXXX", run_dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* so that the postgres user can traverse it when we run as root */
    ck_assert_int_eq(chmod(dir, 0755), 0);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    log_set_fd(devnull);
}

static void teardown(void)
{
    log_set_fd(2);
    close(devnull);
    remove_tree(dir);
}

static char *path_in(const char *base, const char *name)
{
    static char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/%s", base, name);
    return buf;
}

static void write_text(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    fputs(content, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- embedded_read_pidfile ---- */

START_TEST(test_read_pidfile)
{
    static const struct {
        const char *content;
        pid_t pid;
    } cases[] = {
        {"1234\n/var/lib/data\n1700000000\n5432\n/tmp\n\n  1   0\nready   \n", 1234},
        {"1234", 1234},
        {"  42\n", 42},
        {"garbage\n", -1},
        {"", -1},
        {"\n", -1},
        {"0\n", -1},
        {"-5\n", -1},
        {"99999999999\n", -1},
    };
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        write_text(path, cases[i].content);
        pid_t pid = embedded_read_pidfile(path);
        ck_assert_msg(pid == cases[i].pid, "pid file \"%s\": expected %d, got %d", cases[i].content,
                      (int)cases[i].pid, (int)pid);
    }
    ck_assert_int_eq(embedded_read_pidfile(path_in(dir, "missing.pid")), -1);
}
END_TEST

/* ---- embedded_quote_conninfo ---- */

START_TEST(test_quote_conninfo)
{
    char out[256];
    embedded_quote_conninfo("/tmp/a b", out, sizeof(out));
    ck_assert_str_eq(out, "'/tmp/a b'");
    embedded_quote_conninfo("it's", out, sizeof(out));
    ck_assert_str_eq(out, "'it\\'s'");
    embedded_quote_conninfo("a\\b", out, sizeof(out));
    ck_assert_str_eq(out, "'a\\\\b'");
    embedded_quote_conninfo("", out, sizeof(out));
    ck_assert_str_eq(out, "''");
}
END_TEST

/* What the quoting produces, libpq reads back as the original value. */
START_TEST(test_quote_conninfo_round_trip)
{
    static const char *const values[] = {"/tmp/a b", "/tmp/it's", "/tmp/back\\slash",
                                         "/tmp/ x = 'y' \\\\ z"};
    for (size_t i = 0; i < SN_ARRAY_LEN(values); i++) {
        char quoted[256], conninfo[300];
        embedded_quote_conninfo(values[i], quoted, sizeof(quoted));
        snprintf(conninfo, sizeof(conninfo), "host=%s port=5432", quoted);
        char *pqerr = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &pqerr);
        ck_assert_msg(opts != NULL, "libpq cannot parse %s: %s", conninfo, pqerr ? pqerr : "");
        const char *host = NULL;
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, "host") == 0) host = o->val;
        ck_assert_msg(host && strcmp(host, values[i]) == 0, "%s: libpq read host '%s', not '%s'",
                      conninfo, host ? host : "(null)", values[i]);
        PQconninfoFree(opts);
    }
}
END_TEST

START_TEST(test_quote_conninfo_small_buffer)
{
    char out[8];
    memset(out, 'X', sizeof(out));
    embedded_quote_conninfo("/tmp/abcdefgh", out, sizeof(out));
    ck_assert_msg(memchr(out, '\0', sizeof(out)) != NULL, "output not terminated");
    size_t len = strlen(out);
    ck_assert_msg(len >= 2 && out[0] == '\'' && out[len - 1] == '\'',
                  "truncated output is not quoted: %s", out);
}
END_TEST

/* ---- embedded_open ---- */

static struct embedded *open_ok(const struct conf *c)
{
    struct embedded *e = NULL;
    char err[1024] = "";
    enum sn_err rc = embedded_open(dir, c, &e, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "embedded_open(%s) failed (%s): %s", dir, sn_strerror(rc), err);
    ck_assert_ptr_nonnull(e);
    return e;
}

START_TEST(test_open_fresh_dir)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);

    ck_assert_str_eq(embedded_dir(e), dir);
    char pg_root[PATH_MAX];
    snprintf(pg_root, sizeof(pg_root), "%s/pg", dir);
    ck_assert_str_eq(embedded_pg_root(e), pg_root);

    struct stat st;
    ck_assert_int_eq(stat(pg_root, &st), 0);
    ck_assert_msg(S_ISDIR(st.st_mode), "%s is not a directory", pg_root);
    ck_assert_msg((st.st_mode & 07777) == 0700, "%s has mode %o, expected 700", pg_root,
                  st.st_mode & 07777);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(c.embedded_pg_user);
        ck_assert_ptr_nonnull(pw);
        ck_assert_msg(st.st_uid == pw->pw_uid, "%s is owned by %d, expected %s (%d)", pg_root,
                      (int)st.st_uid, c.embedded_pg_user, (int)pw->pw_uid);
    }
    ck_assert_msg(exists(path_in(dir, "sn-broker.lock")), "no sn-broker.lock");
    ck_assert_msg(exists(path_in(dir, "postgresql.log")), "no postgresql.log");
    ck_assert_msg(!exists(path_in(dir, "pg.location")), "pg.location written for a reachable DIR");

    const char *conninfo = embedded_conninfo(e);
    ck_assert_contains(conninfo, "host=");
    ck_assert_contains(conninfo, dir);
    ck_assert_contains(conninfo, "port=5432");
    ck_assert_contains(conninfo, "dbname=postgres");
    ck_assert_contains(conninfo, "user=sn_broker");
    char *pqerr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &pqerr);
    ck_assert_msg(opts != NULL, "libpq cannot parse %s: %s", conninfo, pqerr ? pqerr : "");
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "host") == 0) ck_assert_str_eq(o->val, pg_root);
    PQconninfoFree(opts);

    embedded_free(e);
    conf_free(&c);
}
END_TEST

START_TEST(test_open_creates_missing_dir)
{
    struct conf c;
    conf_init(&c);
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    struct embedded *e = NULL;
    char err[1024] = "";
    ck_assert_msg(embedded_open(sub, &c, &e, err, sizeof(err)) == SN_OK, "open: %s", err);
    struct stat st;
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_str_eq(embedded_dir(e), sub);
    embedded_free(e);
    conf_free(&c);
}
END_TEST

START_TEST(test_open_twice_is_refused)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);

    struct embedded *second = (struct embedded *)0x1;
    char err[1024] = "";
    enum sn_err rc = embedded_open(dir, &c, &second, err, sizeof(err));
    ck_assert_msg(rc != SN_OK, "a second embedded_open on %s succeeded", dir);
    ck_assert_contains(err, "in use");
    ck_assert_contains(err, dir);
    ck_assert_msg(second == (struct embedded *)0x1, "out was written on failure");

    /* the first still works, and once it is freed the directory is free */
    ck_assert_int_eq(embedded_write_file(e, "kafka.bootstrap", "x:1\n", 0644), SN_OK);
    embedded_free(e);
    e = open_ok(&c);
    embedded_free(e);
    conf_free(&c);
}
END_TEST

/* A failed embedded_open must not touch what the broker holding DIR wrote;
 * see the report (embedded.c, line 418). */
START_TEST(test_refused_open_keeps_http_address)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    ck_assert_int_eq(embedded_write_file(e, "http.address", "127.0.0.1:8080\n", 0644), SN_OK);

    struct embedded *second = NULL;
    char err[1024] = "";
    ck_assert_int_ne(embedded_open(dir, &c, &second, err, sizeof(err)), SN_OK);
    ck_assert_msg(exists(path_in(dir, "http.address")),
                  "a refused embedded_open removed the running broker's http.address");
    embedded_free(e);
    conf_free(&c);
}
END_TEST

START_TEST(test_open_bad_bindir)
{
    struct conf c;
    char err[1024] = "";
    conf_init(&c);
    ck_assert_int_eq(conf_set(&c, "embedded.pg_bindir", "/nonexistent/pg/bin", err, sizeof(err)),
                     SN_OK);
    struct embedded *e = NULL;
    enum sn_err rc = embedded_open(dir, &c, &e, err, sizeof(err));
    ck_assert_int_ne(rc, SN_OK);
    ck_assert_ptr_null(e);
    ck_assert_contains(err, "/nonexistent/pg/bin");
    ck_assert_contains(err, "embedded.pg_bindir");
    /* the lock was released */
    struct conf ok;
    conf_init(&ok);
    e = open_ok(&ok);
    embedded_free(e);
    conf_free(&ok);
    conf_free(&c);
}
END_TEST

START_TEST(test_open_unknown_pg_user_as_root)
{
    if (geteuid() != 0) return; /* the user only matters to root */
    struct conf c;
    char err[1024] = "";
    conf_init(&c);
    ck_assert_int_eq(conf_set(&c, "embedded.pg_user", "sn-no-such-user", err, sizeof(err)), SN_OK);
    struct embedded *e = NULL;
    ck_assert_int_ne(embedded_open(dir, &c, &e, err, sizeof(err)), SN_OK);
    ck_assert_ptr_null(e);
    ck_assert_contains(err, "'sn-no-such-user'");
    ck_assert_contains(err, "embedded.pg_user");
    conf_free(&c);
}
END_TEST

/* A pid file left behind whose pid is not a postgres of this directory: the
 * process is left alone, the pid file and socket lock are removed. */
START_TEST(test_open_clears_stale_pidfile)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pause();
        _exit(0);
    }
    char data[128], pidfile[PATH_MAX], socklock[PATH_MAX], text[256];
    snprintf(data, sizeof(data), "%s/pg/data", dir);
    ck_assert_int_eq(mkdir(path_in(dir, "pg"), 0700), 0);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", data);
    snprintf(socklock, sizeof(socklock), "%s/pg/.s.PGSQL.5432.lock", dir);
    snprintf(text, sizeof(text), "%d\n%s\n", (int)child, data);
    write_text(pidfile, text);
    write_text(socklock, "x\n");

    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    ck_assert_msg(!exists(pidfile), "stale postmaster.pid was not removed");
    ck_assert_msg(!exists(socklock), "stale socket lock was not removed");
    ck_assert_msg(kill(child, 0) == 0, "an unrelated process named by the pid file was killed");
    embedded_free(e);
    conf_free(&c);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}
END_TEST

START_TEST(test_open_removes_interrupted_initdb)
{
    ck_assert_int_eq(mkdir(path_in(dir, "pg"), 0700), 0);
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s/pg/data.tmp", dir);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    write_text(path_in(tmp, "PG_VERSION"), "15\n");
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    ck_assert_msg(!exists(tmp), "data.tmp of an interrupted initdb is still there");
    embedded_free(e);
    conf_free(&c);
}
END_TEST

/* ---- files in DIR ---- */

static void assert_no_tmp_files(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        ck_assert_msg(len < 4 || strcmp(de->d_name + len - 4, ".tmp") != 0,
                      "temporary file left behind: %s", de->d_name);
    }
    closedir(d);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

START_TEST(test_write_file)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    const char *path = path_in(dir, "admin.token");
    char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s", path);

    ck_assert_int_eq(embedded_write_file(e, "admin.token", "sn_first\n", 0600), SN_OK);
    ck_assert_str_eq(read_text(file), "sn_first\n");
    ck_assert_msg(mode_of(file) == 0600, "mode %o, expected 600", mode_of(file));
    assert_no_tmp_files();

    struct stat before;
    ck_assert_int_eq(stat(file, &before), 0);
    ck_assert_int_eq(embedded_write_file(e, "admin.token", "sn_second, longer\n", 0600), SN_OK);
    ck_assert_str_eq(read_text(file), "sn_second, longer\n");
    ck_assert_msg(mode_of(file) == 0600, "mode %o, expected 600", mode_of(file));
    struct stat after;
    ck_assert_int_eq(stat(file, &after), 0);
    ck_assert_msg(before.st_ino != after.st_ino, "the file was rewritten in place, not replaced");
    assert_no_tmp_files();

    /* the mode asked for, whatever the umask */
    mode_t old = umask(077);
    ck_assert_int_eq(embedded_write_file(e, "kafka.bootstrap", "127.0.0.1:9092\n", 0644), SN_OK);
    umask(old);
    snprintf(file, sizeof(file), "%s/kafka.bootstrap", dir);
    ck_assert_msg(mode_of(file) == 0644, "mode %o, expected 644", mode_of(file));

    /* a stale temporary file from a crash does not get in the way */
    write_text(path_in(dir, "http.address.tmp"), "junk");
    ck_assert_int_eq(embedded_write_file(e, "http.address", "127.0.0.1:1\n", 0644), SN_OK);
    snprintf(file, sizeof(file), "%s/http.address", dir);
    ck_assert_str_eq(read_text(file), "127.0.0.1:1\n");
    assert_no_tmp_files();

    embedded_free(e);
    conf_free(&c);
}
END_TEST

START_TEST(test_write_file_error)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    ck_assert_int_eq(embedded_write_file(e, "no-such-dir/file", "x", 0600), SN_ERR_IO);
    ck_assert_msg(!exists(path_in(dir, "no-such-dir")), "a directory was created");
    assert_no_tmp_files();
    embedded_free(e);
    conf_free(&c);
}
END_TEST

START_TEST(test_free_removes_http_address)
{
    struct conf c;
    conf_init(&c);
    struct embedded *e = open_ok(&c);
    ck_assert_int_eq(embedded_write_file(e, "http.address", "127.0.0.1:8080\n", 0644), SN_OK);
    ck_assert_int_eq(embedded_write_file(e, "kafka.bootstrap", "127.0.0.1:9092\n", 0644), SN_OK);
    embedded_free(e);
    ck_assert_msg(!exists(path_in(dir, "http.address")), "http.address survived embedded_free");
    ck_assert_msg(exists(path_in(dir, "kafka.bootstrap")), "kafka.bootstrap was removed");
    embedded_free(NULL);
    conf_free(&c);
}
END_TEST

static Suite *embedded_suite(void)
{
    Suite *s = suite_create("embedded");
    TCase *tc = tcase_create("helpers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_read_pidfile);
    tcase_add_test(tc, test_quote_conninfo);
    tcase_add_test(tc, test_quote_conninfo_round_trip);
    tcase_add_test(tc, test_quote_conninfo_small_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("open");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_fresh_dir);
    tcase_add_test(tc, test_open_creates_missing_dir);
    tcase_add_test(tc, test_open_twice_is_refused);
    tcase_add_test(tc, test_open_bad_bindir);
    tcase_add_test(tc, test_open_unknown_pg_user_as_root);
    tcase_add_test(tc, test_open_clears_stale_pidfile);
    tcase_add_test(tc, test_open_removes_interrupted_initdb);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_file);
    tcase_add_test(tc, test_write_file_error);
    tcase_add_test(tc, test_free_removes_http_address);
    suite_add_tcase(s, tc);

    /* regressions: bugs found and fixed */
    {
        tc = tcase_create("regressions");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_refused_open_keeps_http_address);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    snprintf(run_dir, sizeof(run_dir), "/tmp/sn-embedded-test-XXXXXX");
    if (!mkdtemp(run_dir) || chmod(run_dir, 0755) != 0) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(embedded_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(run_dir);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
