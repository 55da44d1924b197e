/* The PostgreSQL connection on the event loop: libpq in non-blocking mode, its
 * socket watched by libevent, one command in flight and a queue behind it,
 * reconnection with backoff, and the migrations run on every (re)connect under
 * an advisory lock. */
#ifndef SN_STORE_H
#define SN_STORE_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "sn.h"

enum store_state {
    STORE_DISCONNECTED, /* waiting to (re)connect */
    STORE_CONNECTING,
    STORE_MIGRATING,
    STORE_READY,
    STORE_FAILED, /* a migration failed: needs an operator */
};

struct store;

struct store_hooks {
    void (*on_state)(struct store *s, enum store_state state, void *arg);
    /* A NOTIFY on a channel given to store_listen(). */
    void (*on_notify)(struct store *s, const char *channel, const char *payload, void *arg);
    void *arg;
};

/* res is NULL when the connection was lost or the store is being freed. The
 * store clears res after the callback returns. */
typedef void (*store_result_fn)(PGresult *res, void *arg);

struct migration {
    int version;
    const char *name;
    const char *sql;
};

/* The migrations compiled into the binary (broker/migrations/NNN_name.sql),
 * in ascending version order. */
extern const struct migration store_migrations[];
extern const size_t store_migrations_count;

struct store *store_new(struct event_base *base, const char *conninfo, int64_t reconnect_max_ms,
                        const struct store_hooks *hooks);
/* Starts connecting; the hooks hear every state change. */
void store_start(struct store *s);
/* Queues a statement. Without params (nparams 0) it goes through the simple
 * query protocol and may hold several statements. Returns SN_ERR_UNAVAILABLE
 * (and does not call cb) unless the store is ready. params are copied. */
enum sn_err store_query(struct store *s, const char *sql, int nparams, const char *const *params,
                        store_result_fn cb, void *arg);
/* A query (once the store is ready: not a migration) that has not answered
 * after ms drops the connection, whose commands fail (their callbacks get
 * NULL), and the store reconnects: a hung server must not stall everything.
 * 0 (the default) waits forever. */
void store_set_query_timeout(struct store *s, int64_t ms);
/* The application_name of the connections (pg_stat_activity), overriding the
 * conninfo's; call before store_start. */
void store_set_application_name(struct store *s, const char *name);
/* LISTENs on channel now and after every reconnect (before the store reports
 * ready again). channel must be a plain identifier. */
void store_listen(struct store *s, const char *channel);
/* Reconnects at once if the store is waiting to retry (the server is known to
 * be back, e.g. the embedded postgres restarted). */
void store_reconnect_now(struct store *s);
enum store_state store_get_state(const struct store *s);
/* A sentence for /readyz: "ready", "connecting", or what went wrong. */
const char *store_detail(const struct store *s);
const char *store_state_name(enum store_state state);
/* 1 when res is an error (NULL included). */
int store_failed(const PGresult *res);
/* Fails queued commands (their callbacks get NULL) and closes the connection. */
void store_free(struct store *s);

#endif
