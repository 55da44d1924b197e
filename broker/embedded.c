#include "embedded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "token.h"

#define PG_SUPERUSER  "sn_broker"
#define PG_PORT       "5432"
#define RELOCATE_ROOT "/var/lib/sn-broker/embedded"
#define READY_POLL_MS 50

enum child_kind { CHILD_NONE, CHILD_INITDB, CHILD_POSTGRES };

struct embedded {
    char *dir;      /* absolute */
    char *pg_root;  /* holds data/ and the socket */
    char *data_dir; /* pg_root/data */
    char *initdb, *postgres;
    char conninfo[PATH_MAX + 128];
    int lock_fd;
    int locked; /* this instance holds DIR's lock */
    int log_fd; /* DIR/postgresql.log */
    int as_other_user;
    uid_t uid;
    gid_t gid;
    gid_t groups[64];
    int ngroups;

    struct event_base *base;
    struct embedded_hooks hooks;
    struct event *sigchld_ev;
    struct event *poll_ev;    /* waits for postmaster.pid to say "ready" */
    struct event *restart_ev; /* restarts postgres after a crash */
    struct event *escalate_ev;
    pid_t child;
    enum child_kind kind;
    int restarts;
    int stopping;
    int escalation;
    void (*stopped)(void *arg);
    void *stopped_arg;
};

static char *path_join(const char *a, const char *b)
{
    size_t len = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(len);
    snprintf(p, len, "%s/%s", a, b);
    return p;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

void embedded_quote_conninfo(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3) return;
    out[o++] = '\'';
    for (; *value && o + 3 < outlen; value++) {
        if (*value == '\'' || *value == '\\') out[o++] = '\\';
        out[o++] = *value;
    }
    out[o++] = '\'';
    out[o] = '\0';
}

pid_t embedded_read_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 0 || pid > INT_MAX) pid = -1;
    fclose(f);
    return (pid_t)pid;
}

/* Line 8 of postmaster.pid is the postmaster's status: "ready" once it accepts
 * connections. */
static int pidfile_says_ready(const char *data_dir)
{
    char *path = path_join(data_dir, "postmaster.pid");
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return 0;
    char line[PATH_MAX];
    int n = 0, ready = 0;
    while (fgets(line, sizeof(line), f)) {
        if (++n == 8) {
            ready = strncmp(line, "ready", 5) == 0;
            break;
        }
    }
    fclose(f);
    return ready;
}

/* Finds initdb and postgres: the configured directory, else PATH, else the
 * newest /usr/lib/postgresql/N/bin (Debian does not put them on PATH). */
static int find_pg_bindir(const char *configured, char *out, size_t outlen)
{
    if (configured && configured[0]) {
        snprintf(out, outlen, "%s", configured);
        return 0;
    }
    const char *path = getenv("PATH");
    if (path) {
        char *copy = xstrdup(path), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char probe[PATH_MAX];
            snprintf(probe, sizeof(probe), "%s/initdb", d);
            if (access(probe, X_OK) == 0) {
                /* follow the symlink so postgres is found beside it */
                char real[PATH_MAX];
                if (realpath(probe, real)) {
                    char *slash = strrchr(real, '/');
                    *slash = '\0';
                    snprintf(out, outlen, "%s", real);
                } else {
                    snprintf(out, outlen, "%s", d);
                }
                free(copy);
                return 0;
            }
        }
        free(copy);
    }
    glob_t g;
    int found = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
        int best = -1;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
            if (v > best) {
                best = v;
                snprintf(out, outlen, "%.*s", (int)(strlen(g.gl_pathv[i]) - strlen("/initdb")),
                         g.gl_pathv[i]);
                found = 0;
            }
        }
        globfree(&g);
    }
    return found;
}

/* In the child, between fork and exec: only async-signal-safe calls, since
 * librdkafka's threads may exist. */
static void child_exec(const struct embedded *e, pid_t parent, int pdeath, char *const argv[])
{
    static char *const envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
    setpgid(0, 0); /* a terminal's Ctrl-C reaches us, not postgres: we stop it in order */
    if (e->as_other_user) {
        if (setgroups((size_t)e->ngroups, e->groups) != 0 || setgid(e->gid) != 0 ||
            setuid(e->uid) != 0)
            _exit(126);
    }
    prctl(PR_SET_PDEATHSIG, pdeath);
    if (getppid() != parent) _exit(1);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(e->log_fd, 1);
    dup2(e->log_fd, 2);
    close_range(3, ~0U, 0);
    if (chdir("/") != 0) _exit(1);
    execve(argv[0], argv, envp);
    _exit(127);
}

static pid_t spawn(struct embedded *e, int pdeath, char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_exec(e, parent, pdeath, argv);
    return pid;
}

/* Runs a short check as the PostgreSQL user: can it enter path? */
static int other_user_can_enter(const struct embedded *e, const char *path)
{
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        if (setgroups((size_t)e->ngroups, e->groups) != 0 || setgid(e->gid) != 0 ||
            setuid(e->uid) != 0)
            _exit(2);
        _exit(access(path, X_OK) == 0 ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int is_our_postmaster(pid_t pid, const char *data_dir)
{
    char link[64], cwd[PATH_MAX], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(link, cwd, sizeof(cwd) - 1);
    if (n < 0) return 0;
    cwd[n] = '\0';
    if (!realpath(data_dir, real)) return 0;
    return strcmp(cwd, real) == 0;
}

static int alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

static void wait_gone(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms && alive(pid); waited += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A postgres left by a broker that was killed: PR_SET_PDEATHSIG has asked it
 * to stop, but it may still be shutting down, or (pid reuse) the pid file may
 * name an unrelated process. Stop ours; clear the lock files otherwise. */
static void clear_stale_postmaster(const struct embedded *e)
{
    char *pidfile = path_join(e->data_dir, "postmaster.pid");
    pid_t pid = embedded_read_pidfile(pidfile);
    if (pid > 0 && alive(pid) && is_our_postmaster(pid, e->data_dir)) {
        log_warn(json_pack("{s:i,s:s}", "pid", (int)pid, "data_dir", e->data_dir),
                 "stopping a postgres left running by an earlier sn-broker on this directory");
        kill(pid, SIGINT);
        wait_gone(pid, 8000);
        if (alive(pid)) {
            kill(pid, SIGQUIT);
            wait_gone(pid, 2000);
        }
        if (alive(pid)) kill(pid, SIGKILL);
        wait_gone(pid, 2000);
    }
    if (pid > 0 && !(alive(pid) && is_our_postmaster(pid, e->data_dir))) {
        char *socklock = path_join(e->pg_root, ".s.PGSQL." PG_PORT ".lock");
        if (unlink(pidfile) == 0)
            log_info(json_pack("{s:i}", "pid", (int)pid), "removed a stale postmaster.pid");
        unlink(socklock);
        free(socklock);
    }
    free(pidfile);
}

static int chown_to_pg(const struct embedded *e, const char *path)
{
    return e->as_other_user ? chown(path, e->uid, e->gid) : 0;
}

enum sn_err embedded_open(const char *dir, const struct conf *conf, struct embedded **out,
                          char *err, size_t errlen)
{
    char real[PATH_MAX], bindir[PATH_MAX];
    if (mkdir_p(dir, 0755) != 0 || !realpath(dir, real)) {
        sn_errf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
        return SN_ERR_IO;
    }
    struct embedded *e = xcalloc(1, sizeof(*e));
    e->dir = xstrdup(real);
    e->log_fd = -1;
    e->lock_fd = -1;
    enum sn_err rc = SN_ERR_IO;

    char *lock_path = path_join(e->dir, "sn-broker.lock");
    e->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock_path);
    if (e->lock_fd < 0 || flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        sn_errf(err, errlen, "%s is in use by another sn-broker (its sn-broker.lock is held)",
                e->dir);
        goto fail;
    }
    e->locked = 1;
    if (find_pg_bindir(conf->embedded_pg_bindir, bindir, sizeof(bindir)) != 0) {
        sn_errf(err, errlen,
                "cannot find initdb: install PostgreSQL (deploy/install-deps.sh) or set "
                "embedded.pg_bindir");
        goto fail;
    }
    e->initdb = path_join(bindir, "initdb");
    e->postgres = path_join(bindir, "postgres");
    if (access(e->initdb, X_OK) != 0 || access(e->postgres, X_OK) != 0) {
        sn_errf(err, errlen, "no initdb and postgres in %s (embedded.pg_bindir)", bindir);
        goto fail;
    }

    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(conf->embedded_pg_user);
        if (!pw || pw->pw_uid == 0) {
            sn_errf(err, errlen,
                    "PostgreSQL refuses to run as root and there is no system user '%s' to run it "
                    "(embedded.pg_user): install PostgreSQL or run sn-broker as another user",
                    conf->embedded_pg_user);
            goto fail;
        }
        e->as_other_user = 1;
        e->uid = pw->pw_uid;
        e->gid = pw->pw_gid;
        e->ngroups = (int)SN_ARRAY_LEN(e->groups);
        if (getgrouplist(pw->pw_name, pw->pw_gid, e->groups, &e->ngroups) < 0) e->ngroups = 0;
    }

    /* The cluster lives in DIR/pg unless the PostgreSQL user cannot reach DIR
     * (a checkout in root's home, mode 700): then under RELOCATE_ROOT, keyed by
     * DIR's path, and DIR/pg.location says where. */
    if (!e->as_other_user || other_user_can_enter(e, e->dir)) {
        e->pg_root = path_join(e->dir, "pg");
    } else {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        char key[17];
        SHA256((const unsigned char *)e->dir, strlen(e->dir), digest);
        for (int i = 0; i < 8; i++)
            snprintf(key + 2 * i, 3, "%02x", digest[i]);
        e->pg_root = path_join(RELOCATE_ROOT, key);
        char *note = path_join(e->dir, "pg.location");
        FILE *f = fopen(note, "w");
        if (f) {
            fprintf(f, "%s\n", e->pg_root);
            fclose(f);
        }
        free(note);
        log_warn(json_pack("{s:s,s:s,s:s}", "dir", e->dir, "user", conf->embedded_pg_user,
                           "cluster", e->pg_root),
                 "the PostgreSQL user cannot enter the data directory, so the embedded cluster "
                 "lives elsewhere (recorded in pg.location; remove it too when you delete the "
                 "directory)");
    }
    if (mkdir_p(e->pg_root, 0700) != 0 || chown_to_pg(e, e->pg_root) != 0 ||
        chmod(e->pg_root, 0700) != 0) {
        sn_errf(err, errlen, "cannot prepare %s: %s", e->pg_root, strerror(errno));
        goto fail;
    }
    if (strlen(e->pg_root) + sizeof("/.s.PGSQL." PG_PORT) >
        sizeof(((struct sockaddr_un *)0)->sun_path)) {
        sn_errf(err, errlen, "the path %s is too long for a unix socket: use a shorter directory",
                e->pg_root);
        goto fail;
    }
    e->data_dir = path_join(e->pg_root, "data");

    char quoted[PATH_MAX + 8];
    embedded_quote_conninfo(e->pg_root, quoted, sizeof(quoted));
    snprintf(e->conninfo, sizeof(e->conninfo),
             "host=%s port=" PG_PORT " user=" PG_SUPERUSER " dbname=postgres "
             "application_name=sn-broker",
             quoted);

    char *log_path = path_join(e->dir, "postgresql.log");
    e->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    free(log_path);
    if (e->log_fd < 0) {
        sn_errf(err, errlen, "cannot open %s/postgresql.log: %s", e->dir, strerror(errno));
        goto fail;
    }

    clear_stale_postmaster(e);
    /* an initdb that was interrupted leaves data.tmp: start it over */
    char *tmp = path_join(e->pg_root, "data.tmp");
    struct stat st;
    if (stat(tmp, &st) == 0) {
        char *argv[] = {"/bin/rm", "-rf", tmp, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[0], argv);
            _exit(127);
        }
        if (pid > 0) waitpid(pid, NULL, 0);
    }
    free(tmp);
    *out = e;
    return SN_OK;

fail:
    embedded_free(e);
    return rc;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg);
static void on_escalate(evutil_socket_t fd, short what, void *arg);

static void child_gone(struct embedded *e)
{
    e->child = 0;
    e->kind = CHILD_NONE;
    evtimer_del(e->poll_ev);
    evtimer_del(e->escalate_ev);
}

static void on_poll_ready(evutil_socket_t fd, short what, void *arg)
{
    struct embedded *e = arg;
    (void)fd;
    (void)what;
    if (e->kind != CHILD_POSTGRES) return;
    if (pidfile_says_ready(e->data_dir)) {
        log_info(json_pack("{s:i,s:s}", "pid", (int)e->child, "cluster", e->pg_root),
                 "embedded postgresql ready");
        e->restarts = 0;
        if (e->hooks.on_ready) e->hooks.on_ready(e, e->hooks.arg);
        return;
    }
    struct timeval tv = {0, READY_POLL_MS * 1000};
    evtimer_add(e->poll_ev, &tv);
}

static void start_postgres(struct embedded *e)
{
    char *argv[] = {e->postgres,
                    "-D",
                    e->data_dir,
                    "-k",
                    e->pg_root,
                    "-p",
                    PG_PORT,
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "unix_socket_permissions=0700",
                    "-c",
                    "max_connections=100",
                    "-c",
                    "logging_collector=off",
                    NULL};
    e->child = spawn(e, SIGINT, argv);
    if (e->child < 0) {
        log_error(json_pack("{s:s}", "error", strerror(errno)), "cannot start postgres");
        e->child = 0;
        return;
    }
    e->kind = CHILD_POSTGRES;
    log_info(json_pack("{s:i,s:s}", "pid", (int)e->child, "data_dir", e->data_dir),
             "starting embedded postgresql");
    struct timeval tv = {0, READY_POLL_MS * 1000};
    evtimer_add(e->poll_ev, &tv);
}

static void start_initdb(struct embedded *e)
{
    char *tmp = path_join(e->pg_root, "data.tmp");
    char *argv[] = {e->initdb, "-D", tmp,    "-U",          PG_SUPERUSER,        "-A",
                    "trust",   "-E", "UTF8", "--no-locale", "--no-instructions", NULL};
    log_info(json_pack("{s:s}", "data_dir", e->data_dir),
             "first start of this directory: creating a private PostgreSQL cluster (initdb)");
    e->child = spawn(e, SIGTERM, argv);
    free(tmp);
    if (e->child < 0) {
        e->child = 0;
        if (e->hooks.on_fatal) e->hooks.on_fatal(e, "cannot run initdb", e->hooks.arg);
        return;
    }
    e->kind = CHILD_INITDB;
}

static void initdb_done(struct embedded *e, int status)
{
    char *tmp = path_join(e->pg_root, "data.tmp");
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok && rename(tmp, e->data_dir) != 0) ok = 0;
    free(tmp);
    if (!ok) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof(msg), "initdb failed: see %s/postgresql.log", e->dir);
        if (e->hooks.on_fatal) e->hooks.on_fatal(e, msg, e->hooks.arg);
        return;
    }
    if (!e->stopping) start_postgres(e);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct embedded *e = arg;
    if (!e->stopping && e->kind == CHILD_NONE) start_postgres(e);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    struct embedded *e = arg;
    (void)fd;
    (void)what;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != e->child) continue;
        enum child_kind kind = e->kind;
        child_gone(e);
        if (kind == CHILD_INITDB && !e->stopping) {
            initdb_done(e, status);
        } else if (kind == CHILD_POSTGRES && !e->stopping) {
            int delay = 1 << (e->restarts < 5 ? e->restarts : 5);
            e->restarts++;
            log_error(json_pack("{s:i,s:i,s:i}", "pid", (int)pid, "status",
                                WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
                                "restart_in_s", delay),
                      "embedded postgresql exited unexpectedly; restarting it (see "
                      "postgresql.log)");
            struct timeval tv = {delay, 0};
            evtimer_add(e->restart_ev, &tv);
        }
    }
    if (e->stopping && e->kind == CHILD_NONE && e->stopped) {
        void (*done)(void *) = e->stopped;
        e->stopped = NULL;
        log_info(NULL, "embedded postgresql stopped");
        done(e->stopped_arg);
    }
}

void embedded_start(struct embedded *e, struct event_base *base, const struct embedded_hooks *hooks)
{
    e->base = base;
    if (hooks) e->hooks = *hooks;
    e->sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, e);
    e->poll_ev = evtimer_new(base, on_poll_ready, e);
    e->restart_ev = evtimer_new(base, on_restart, e);
    e->escalate_ev = evtimer_new(base, on_escalate, e);
    if (!e->sigchld_ev || !e->poll_ev || !e->restart_ev || !e->escalate_ev) sn_oom(0);
    event_add(e->sigchld_ev, NULL);
    struct stat st;
    char *version = path_join(e->data_dir, "PG_VERSION");
    int exists = stat(version, &st) == 0;
    free(version);
    if (exists)
        start_postgres(e);
    else
        start_initdb(e);
}

/* Fast shutdown first; SIGQUIT (immediate) if it hangs, SIGKILL at last. */
static void on_escalate(evutil_socket_t fd, short what, void *arg)
{
    struct embedded *e = arg;
    (void)fd;
    (void)what;
    if (e->kind == CHILD_NONE) return;
    int sig = e->escalation++ == 0 ? SIGQUIT : SIGKILL;
    log_warn(json_pack("{s:i,s:s}", "pid", (int)e->child, "signal",
                       sig == SIGQUIT ? "SIGQUIT" : "SIGKILL"),
             "postgres is slow to stop");
    kill(e->child, sig);
    struct timeval tv = {1, 0};
    evtimer_add(e->escalate_ev, &tv);
}

void embedded_stop(struct embedded *e, void (*done)(void *arg), void *arg)
{
    e->stopping = 1;
    e->stopped = done;
    e->stopped_arg = arg;
    if (e->restart_ev) evtimer_del(e->restart_ev);
    if (e->kind == CHILD_NONE) {
        e->stopped = NULL;
        done(arg);
        return;
    }
    kill(e->child, e->kind == CHILD_POSTGRES ? SIGINT : SIGTERM);
    struct timeval tv = {5, 0};
    evtimer_add(e->escalate_ev, &tv);
}

void embedded_free(struct embedded *e)
{
    if (!e) return;
    if (e->child > 0) {
        kill(e->child, SIGKILL);
        waitpid(e->child, NULL, 0);
    }
    if (e->sigchld_ev) event_free(e->sigchld_ev);
    if (e->poll_ev) event_free(e->poll_ev);
    if (e->restart_ev) event_free(e->restart_ev);
    if (e->escalate_ev) event_free(e->escalate_ev);
    if (e->locked) { /* the file belongs to the broker that holds DIR */
        char *addr = path_join(e->dir, "http.address");
        unlink(addr);
        free(addr);
    }
    if (e->log_fd >= 0) close(e->log_fd);
    if (e->lock_fd >= 0) close(e->lock_fd);
    free(e->dir);
    free(e->pg_root);
    free(e->data_dir);
    free(e->initdb);
    free(e->postgres);
    free(e);
}

const char *embedded_conninfo(const struct embedded *e)
{
    return e->conninfo;
}

const char *embedded_dir(const struct embedded *e)
{
    return e->dir;
}

const char *embedded_pg_root(const struct embedded *e)
{
    return e->pg_root;
}

enum sn_err sn_write_file_atomic(const char *path, const char *content, mode_t mode)
{
    size_t len = strlen(path) + 5;
    char *tmp = xmalloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    enum sn_err rc = SN_ERR_IO;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0) {
        size_t n = strlen(content);
        ssize_t w = write(fd, content, n);
        if (w == (ssize_t)n && fchmod(fd, mode) == 0 && fsync(fd) == 0 && close(fd) == 0) {
            fd = -1;
            if (rename(tmp, path) == 0) rc = SN_OK;
        }
        if (fd >= 0) close(fd);
    }
    if (rc != SN_OK) {
        log_error(json_pack("{s:s,s:s}", "file", path, "error", strerror(errno)),
                  "cannot write file");
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

enum sn_err embedded_write_file(const struct embedded *e, const char *name, const char *content,
                                mode_t mode)
{
    char *path = path_join(e->dir, name);
    enum sn_err rc = sn_write_file_atomic(path, content, mode);
    free(path);
    return rc;
}

struct token_job {
    char *path;
    char token[TOKEN_TEXT_LEN + 1];
    void (*done)(enum sn_err rc, void *arg);
    void *arg;
};

static void admin_token_stored(PGresult *res, void *arg)
{
    struct token_job *job = arg;
    enum sn_err rc = SN_ERR_DB;
    if (res && !store_failed(res)) {
        char line[TOKEN_TEXT_LEN + 2];
        snprintf(line, sizeof(line), "%s\n", job->token);
        rc = sn_write_file_atomic(job->path, line, 0600);
        if (rc == SN_OK) log_info(json_pack("{s:s}", "file", job->path), "admin token created");
    } else {
        log_error(json_pack("{s:s}", "error", res ? PQresultErrorMessage(res) : "connection lost"),
                  "cannot store the admin token");
    }
    OPENSSL_cleanse(job->token, sizeof(job->token));
    job->done(rc, job->arg);
    free(job->path);
    free(job);
}

void admin_token_ensure(const char *path, struct store *store,
                        void (*done)(enum sn_err rc, void *arg), void *arg)
{
    if (access(path, F_OK) == 0) {
        done(SN_OK, arg);
        return;
    }
    struct token_job *job = xcalloc(1, sizeof(*job));
    job->path = xstrdup(path);
    job->done = done;
    job->arg = arg;
    char hash[65];
    if (token_generate(job->token, sizeof(job->token)) != SN_OK) {
        free(job->path);
        free(job);
        done(SN_ERR_CRYPTO, arg);
        return;
    }
    token_hash_hex(job->token, hash);
    const char *params[] = {hash};
    enum sn_err rc = store_query(store,
                                 "INSERT INTO tokens (role, name, token_sha256) "
                                 "VALUES ('admin', 'first admin', decode($1, 'hex'))",
                                 1, params, admin_token_stored, job);
    if (rc != SN_OK) {
        OPENSSL_cleanse(job->token, sizeof(job->token));
        free(job->path);
        free(job);
        done(rc, arg);
    }
}

void embedded_ensure_admin_token(struct embedded *e, struct store *store,
                                 void (*done)(enum sn_err rc, void *arg), void *arg)
{
    char *path = path_join(e->dir, "admin.token");
    admin_token_ensure(path, store, done, arg);
    free(path);
}
