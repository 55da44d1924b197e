#include "store.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#define MIGRATION_LOCK_KEY "7262810403"
#define PING_INTERVAL_SEC  5

struct cmd {
    char *sql;
    int nparams;
    char **params;
    store_result_fn cb;
    void *arg;
    struct cmd *next;
};

struct store {
    struct event_base *base;
    char *conninfo;
    char *application_name; /* NULL: as conninfo says */
    int64_t reconnect_max_ms;
    struct store_hooks hooks;
    PGconn *conn;
    enum store_state state;
    char detail[512];
    int attempt;
    struct event *sock_ev;  /* connecting: one-shot; connected: persistent read */
    struct event *write_ev; /* connected: waits until libpq's output is flushed */
    struct event *retry_ev;
    struct event *ping_ev;
    struct event *timeout_ev; /* the command in flight has taken too long */
    int64_t query_timeout_ms;
    struct cmd *head, **tail;
    struct cmd *inflight;
    PGresult *result; /* the result kept for the command in flight */
    /* migrations */
    size_t next_migration;
    unsigned char *applied;
    char migration_error[512];
    char *channels[8];
    int nchannels;
};

static void send_next(struct store *s);
static void connect_begin(struct store *s);
static void migrate_start(struct store *s);

const char *store_state_name(enum store_state state)
{
    static const char *const names[] = {"disconnected", "connecting", "migrating", "ready",
                                        "failed"};
    return (unsigned)state < SN_ARRAY_LEN(names) ? names[state] : "unknown";
}

int store_failed(const PGresult *res)
{
    if (!res) return 1;
    ExecStatusType st = PQresultStatus(res);
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
}

/* libpq messages end in a newline and may span lines; keep the first line. */
static void set_detail(struct store *s, const char *prefix, const char *msg)
{
    snprintf(s->detail, sizeof(s->detail), "%s%s%.*s", prefix, msg && *msg ? ": " : "",
             msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
}

static void set_state(struct store *s, enum store_state state)
{
    if (s->state == state) return;
    s->state = state;
    metrics_gauge_set("sn_database_up", "", state == STORE_READY);
    if (s->hooks.on_state) s->hooks.on_state(s, state, s->hooks.arg);
}

static void cmd_free(struct cmd *c)
{
    for (int i = 0; i < c->nparams; i++)
        free(c->params[i]);
    free(c->params);
    free(c->sql);
    free(c);
}

static void fail_all(struct store *s)
{
    struct cmd *list = s->inflight;
    s->inflight = NULL;
    if (s->result) {
        PQclear(s->result);
        s->result = NULL;
    }
    if (list) {
        list->next = s->head;
    } else {
        list = s->head;
    }
    s->head = NULL;
    s->tail = &s->head;
    while (list) {
        struct cmd *c = list;
        list = c->next;
        if (c->cb) c->cb(NULL, c->arg);
        cmd_free(c);
    }
}

static void close_conn(struct store *s)
{
    evtimer_del(s->timeout_ev);
    if (s->sock_ev) {
        event_free(s->sock_ev);
        s->sock_ev = NULL;
    }
    if (s->write_ev) {
        event_free(s->write_ev);
        s->write_ev = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

static void schedule_reconnect(struct store *s)
{
    int64_t delay = 250;
    for (int i = 0; i < s->attempt && delay < s->reconnect_max_ms; i++)
        delay *= 2;
    if (delay > s->reconnect_max_ms) delay = s->reconnect_max_ms;
    delay = delay * (80 + random() % 41) / 100; /* jitter: 80% to 120% */
    s->attempt++;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    log_warn(json_pack("{s:s,s:i,s:I}", "detail", s->detail, "attempt", s->attempt, "retry_in_ms",
                       (json_int_t)delay),
             "database not reachable, retrying");
    evtimer_add(s->retry_ev, &tv);
}

/* The connection broke (or could not be made): fail what waits, retry later. */
static void lost(struct store *s, const char *what)
{
    set_detail(s, what, s->conn ? PQerrorMessage(s->conn) : NULL);
    close_conn(s);
    set_state(s, STORE_DISCONNECTED);
    fail_all(s);
    schedule_reconnect(s);
}

static void deliver(struct store *s)
{
    evtimer_del(s->timeout_ev);
    struct cmd *c = s->inflight;
    PGresult *res = s->result;
    s->inflight = NULL;
    s->result = NULL;
    if (c->cb) c->cb(res, c->arg);
    PQclear(res);
    cmd_free(c);
}

/* Reads every complete result; a command ends when PQgetResult gives NULL.
 * Of several results (a multi-statement query) the first error wins, else the
 * last result. */
static void process_results(struct store *s)
{
    while (s->conn && s->inflight && !PQisBusy(s->conn)) {
        PGresult *res = PQgetResult(s->conn);
        if (!res) {
            deliver(s);
            continue;
        }
        if (!s->result) {
            s->result = res;
        } else if (store_failed(s->result)) {
            PQclear(res); /* the first error wins */
        } else {
            PQclear(s->result);
            s->result = res;
        }
    }
    PGnotify *n;
    while (s->conn && (n = PQnotifies(s->conn)) != NULL) {
        if (s->hooks.on_notify) s->hooks.on_notify(s, n->relname, n->extra, s->hooks.arg);
        PQfreemem(n);
    }
    if (s->conn && PQstatus(s->conn) == CONNECTION_BAD) {
        lost(s, "connection lost");
        return;
    }
    send_next(s);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    (void)fd;
    (void)what;
    int rc = PQflush(s->conn);
    if (rc < 0)
        lost(s, "connection lost");
    else if (rc > 0)
        event_add(s->write_ev, NULL);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    (void)fd;
    (void)what;
    if (!PQconsumeInput(s->conn)) {
        lost(s, "connection lost");
        return;
    }
    process_results(s);
}

static void send_next(struct store *s)
{
    if (s->inflight || !s->head || !s->conn) return;
    struct cmd *c = s->head;
    s->head = c->next;
    if (!s->head) s->tail = &s->head;
    c->next = NULL;
    s->inflight = c;
    int ok = c->nparams == 0 ? PQsendQuery(s->conn, c->sql)
                             : PQsendQueryParams(s->conn, c->sql, c->nparams, NULL,
                                                 (const char *const *)c->params, NULL, NULL, 0);
    if (!ok) {
        lost(s, "cannot send query");
        return;
    }
    if (s->state == STORE_READY && s->query_timeout_ms > 0) {
        struct timeval tv = {s->query_timeout_ms / 1000, (s->query_timeout_ms % 1000) * 1000};
        evtimer_add(s->timeout_ev, &tv);
    }
    int rc = PQflush(s->conn);
    if (rc < 0)
        lost(s, "connection lost");
    else if (rc > 0)
        event_add(s->write_ev, NULL);
}

static void on_query_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    char what_happened[96];
    (void)fd;
    (void)what;
    snprintf(what_happened, sizeof(what_happened), "no answer to a query within %lld ms",
             (long long)s->query_timeout_ms);
    lost(s, what_happened);
}

void store_set_query_timeout(struct store *s, int64_t ms)
{
    s->query_timeout_ms = ms;
}

static void enqueue(struct store *s, const char *sql, int nparams, const char *const *params,
                    store_result_fn cb, void *arg)
{
    struct cmd *c = xcalloc(1, sizeof(*c));
    c->sql = xstrdup(sql);
    c->nparams = nparams;
    if (nparams > 0) {
        c->params = xcalloc((size_t)nparams, sizeof(char *));
        for (int i = 0; i < nparams; i++)
            c->params[i] = params[i] ? xstrdup(params[i]) : NULL;
    }
    c->cb = cb;
    c->arg = arg;
    *s->tail = c;
    s->tail = &c->next;
    send_next(s);
}

enum sn_err store_query(struct store *s, const char *sql, int nparams, const char *const *params,
                        store_result_fn cb, void *arg)
{
    if (s->state != STORE_READY) return SN_ERR_UNAVAILABLE;
    enqueue(s, sql, nparams, params, cb, arg);
    return SN_OK;
}

/* Server notices (e.g. "relation already exists, skipping") would otherwise
 * go to stderr as raw text, breaking the one-JSON-object-per-line log. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug(json_pack("{s:s}", "component", "postgresql"), "%.*s", (int)strcspn(message, "\n"),
              message);
}

static void connected(struct store *s)
{
    PQsetNoticeProcessor(s->conn, on_notice, s);
    if (PQsetnonblocking(s->conn, 1) != 0) {
        lost(s, "cannot make the connection non-blocking");
        return;
    }
    evutil_socket_t fd = PQsocket(s->conn);
    event_free(s->sock_ev); /* the one-shot event of the connection phase */
    s->sock_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_readable, s);
    s->write_ev = event_new(s->base, fd, EV_WRITE, on_write, s);
    if (!s->sock_ev || !s->write_ev) sn_oom(0);
    event_add(s->sock_ev, NULL);
    s->attempt = 0;
    log_info(json_pack("{s:s,s:i}", "server_version",
                       PQparameterStatus(s->conn, "server_version")
                           ? PQparameterStatus(s->conn, "server_version")
                           : "?",
                       "backend_pid", PQbackendPID(s->conn)),
             "database connected");
    set_detail(s, "migrating", NULL);
    set_state(s, STORE_MIGRATING);
    migrate_start(s);
}

static void on_connect_poll(evutil_socket_t fd, short what, void *arg);

static void watch_connect(struct store *s, PostgresPollingStatusType poll)
{
    if (s->sock_ev) event_free(s->sock_ev);
    short events = poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
    s->sock_ev = event_new(s->base, PQsocket(s->conn), events, on_connect_poll, s);
    if (!s->sock_ev) sn_oom(0);
    struct timeval tv = {10, 0}; /* a server that accepts but never answers */
    event_add(s->sock_ev, &tv);
}

static void on_connect_poll(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        lost(s, "connection attempt timed out");
        return;
    }
    PostgresPollingStatusType poll = PQconnectPoll(s->conn);
    switch (poll) {
    case PGRES_POLLING_OK: connected(s); break;
    case PGRES_POLLING_FAILED: lost(s, "cannot connect"); break;
    default: watch_connect(s, poll); break;
    }
}

static void connect_begin(struct store *s)
{
    set_detail(s, "connecting", NULL);
    set_state(s, STORE_CONNECTING);
    /* keywords after an expanded dbname override what the conninfo says */
    const char *const keys[] = {"dbname", "application_name", NULL};
    const char *const values[] = {s->conninfo, s->application_name, NULL};
    s->conn = PQconnectStartParams(keys, values, 1);
    if (!s->conn) sn_oom(0);
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        lost(s, "cannot connect");
        return;
    }
    watch_connect(s, PGRES_POLLING_WRITING);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_begin(arg);
}

static void ping_done(PGresult *res, void *arg)
{
    (void)res;
    (void)arg;
}

/* Keeps an idle connection honest: a server that went away is noticed within
 * PING_INTERVAL_SEC even when nothing else is sent. */
static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct store *s = arg;
    (void)fd;
    (void)what;
    if (s->state == STORE_READY && !s->inflight && !s->head)
        enqueue(s, "SELECT 1", 0, NULL, ping_done, s);
}

/* Migrations: lock, ensure the bookkeeping table, read what is applied, apply
 * each missing file in its own transaction (BEGIN, file, record, COMMIT), unlock. */

/* res, when given, adds the server's message to what. */
static void migration_failed(struct store *s, const char *what, const PGresult *res)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s%s%.*s", what, res ? ": " : "",
             res ? (int)strcspn(PQresultErrorMessage(res), "\n") : 0,
             res ? PQresultErrorMessage(res) : "");
    snprintf(s->detail, sizeof(s->detail), "%s", msg);
    log_error(json_pack("{s:s}", "detail", msg), "database migration failed");
    close_conn(s);
    set_state(s, STORE_FAILED);
    fail_all(s);
}

static void migrate_next(struct store *s);

static void migrate_listening(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    if (store_failed(res)) {
        migration_failed(s, "cannot LISTEN", res);
        return;
    }
    set_detail(s, "ready", NULL);
    set_state(s, STORE_READY);
}

static void migrate_unlocked(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return; /* connection lost: the reconnect starts over */
    if (store_failed(res)) {
        migration_failed(s, "cannot release the migration lock", res);
        return;
    }
    /* LISTEN before reporting ready, so no notification is missed between
     * the first query of a listener and its LISTEN */
    for (int i = 0; i < s->nchannels; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "LISTEN %s", s->channels[i]);
        enqueue(s, sql, 0, NULL, i == s->nchannels - 1 ? migrate_listening : NULL, s);
    }
    if (s->nchannels == 0) migrate_listening(res, s);
}

static void migrate_step_done(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    const struct migration *m = &store_migrations[s->next_migration];
    if (store_failed(res) && !s->migration_error[0]) {
        char what[256];
        snprintf(what, sizeof(what), "migration %03d_%s failed", m->version, m->name);
        snprintf(s->migration_error, sizeof(s->migration_error), "%s: %.*s", what,
                 (int)strcspn(PQresultErrorMessage(res), "\n"), PQresultErrorMessage(res));
    }
}

static void migrate_committed(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    const struct migration *m = &store_migrations[s->next_migration];
    if (s->migration_error[0]) {
        migration_failed(s, s->migration_error, NULL);
        return;
    }
    if (store_failed(res)) {
        migration_failed(s, "commit of a migration failed", res);
        return;
    }
    log_info(json_pack("{s:i,s:s}", "version", m->version, "name", m->name), "migration applied");
    s->applied[s->next_migration] = 1;
    migrate_next(s);
}

static void migrate_next(struct store *s)
{
    while (s->next_migration < store_migrations_count && s->applied[s->next_migration])
        s->next_migration++;
    if (s->next_migration == store_migrations_count) {
        const char *p[] = {MIGRATION_LOCK_KEY};
        enqueue(s, "SELECT pg_advisory_unlock($1::bigint)", 1, p, migrate_unlocked, s);
        return;
    }
    const struct migration *m = &store_migrations[s->next_migration];
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *p[] = {version, m->name};
    s->migration_error[0] = '\0';
    enqueue(s, "BEGIN", 0, NULL, migrate_step_done, s);
    enqueue(s, m->sql, 0, NULL, migrate_step_done, s);
    enqueue(s, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2, p,
            migrate_step_done, s);
    enqueue(s, "COMMIT", 0, NULL, migrate_committed, s);
}

static void migrate_listed(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    if (store_failed(res)) {
        migration_failed(s, "cannot read schema_migrations", res);
        return;
    }
    memset(s->applied, 0, store_migrations_count);
    for (int i = 0; i < PQntuples(res); i++) {
        int version = atoi(PQgetvalue(res, i, 0));
        for (size_t j = 0; j < store_migrations_count; j++)
            if (store_migrations[j].version == version) s->applied[j] = 1;
    }
    s->next_migration = 0;
    migrate_next(s);
}

static void migrate_table_ready(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    if (store_failed(res)) {
        migration_failed(s, "cannot create schema_migrations", res);
        return;
    }
    enqueue(s, "SELECT version FROM schema_migrations", 0, NULL, migrate_listed, s);
}

static void migrate_locked(PGresult *res, void *arg)
{
    struct store *s = arg;
    if (!res) return;
    if (store_failed(res)) {
        migration_failed(s, "cannot take the migration lock", res);
        return;
    }
    enqueue(s,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())",
            0, NULL, migrate_table_ready, s);
}

static void migrate_start(struct store *s)
{
    const char *p[] = {MIGRATION_LOCK_KEY};
    /* Another process migrating holds the lock; the server makes us wait. */
    enqueue(s, "SELECT pg_advisory_lock($1::bigint)", 1, p, migrate_locked, s);
}

struct store *store_new(struct event_base *base, const char *conninfo, int64_t reconnect_max_ms,
                        const struct store_hooks *hooks)
{
    struct store *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->conninfo = xstrdup(conninfo);
    s->reconnect_max_ms = reconnect_max_ms;
    if (hooks) s->hooks = *hooks;
    s->tail = &s->head;
    s->applied = xcalloc(store_migrations_count + 1, 1);
    s->retry_ev = evtimer_new(base, on_retry, s);
    s->ping_ev = event_new(base, -1, EV_PERSIST, on_ping, s);
    s->timeout_ev = evtimer_new(base, on_query_timeout, s);
    if (!s->retry_ev || !s->ping_ev || !s->timeout_ev) sn_oom(0);
    set_detail(s, "not started", NULL);
    metrics_register("sn_database_up", METRIC_GAUGE,
                     "1 when the database connection is up and migrated, else 0");
    metrics_gauge_set("sn_database_up", "", 0);
    return s;
}

void store_start(struct store *s)
{
    struct timeval tv = {PING_INTERVAL_SEC, 0};
    event_add(s->ping_ev, &tv);
    connect_begin(s);
}

void store_listen(struct store *s, const char *channel)
{
    if (s->nchannels == (int)SN_ARRAY_LEN(s->channels)) abort();
    s->channels[s->nchannels++] = xstrdup(channel);
    if (s->state == STORE_READY) {
        char sql[128];
        snprintf(sql, sizeof(sql), "LISTEN %s", channel);
        enqueue(s, sql, 0, NULL, NULL, NULL);
    }
}

void store_reconnect_now(struct store *s)
{
    if (s->state != STORE_DISCONNECTED || !evtimer_pending(s->retry_ev, NULL)) return;
    evtimer_del(s->retry_ev);
    connect_begin(s);
}

enum store_state store_get_state(const struct store *s)
{
    return s->state;
}

const char *store_detail(const struct store *s)
{
    return s->detail;
}

void store_free(struct store *s)
{
    if (!s) return;
    s->hooks.on_state = NULL;
    s->state = STORE_DISCONNECTED;
    fail_all(s);
    close_conn(s);
    event_free(s->retry_ev);
    event_free(s->ping_ev);
    event_free(s->timeout_ev);
    for (int i = 0; i < s->nchannels; i++)
        free(s->channels[i]);
    free(s->applied);
    free(s->conninfo);
    free(s->application_name);
    free(s);
}

void store_set_application_name(struct store *s, const char *name)
{
    free(s->application_name);
    s->application_name = xstrdup(name);
}
