/* The embedded mode's private PostgreSQL: created with initdb on first use,
 * run as a child (as the configured system user when we are root), listening
 * only on a unix socket in a private directory, stopped on exit, and stopped
 * by the kernel if we die (PR_SET_PDEATHSIG). Also the files of DIR that other
 * tools read (admin.token, kafka.bootstrap, http.address). */
#ifndef SN_EMBEDDED_H
#define SN_EMBEDDED_H

#include <event2/event.h>
#include <sys/types.h>

#include "conf.h"
#include "sn.h"

struct embedded;
struct store;

struct embedded_hooks {
    /* PostgreSQL accepts connections (after the first start and every restart). */
    void (*on_ready)(struct embedded *e, void *arg);
    /* initdb failed: nothing will work; the message says where to look. */
    void (*on_fatal)(struct embedded *e, const char *message, void *arg);
    void *arg;
};

/* Creates DIR if needed, takes its lock (one broker per DIR), finds the
 * PostgreSQL binaries, decides where the cluster lives, and stops a postgres
 * that an earlier broker on DIR left running. Must run before any thread is
 * started. */
enum sn_err embedded_open(const char *dir, const struct conf *conf, struct embedded **out,
                          char *err, size_t errlen);
/* Runs initdb if needed, then postgres; hooks report progress on the loop. */
void embedded_start(struct embedded *e, struct event_base *base,
                    const struct embedded_hooks *hooks);
/* libpq connection string of the private cluster. */
const char *embedded_conninfo(const struct embedded *e);
const char *embedded_dir(const struct embedded *e);
/* Where the cluster lives (DIR/pg, or elsewhere when DIR is closed to the
 * PostgreSQL user). */
const char *embedded_pg_root(const struct embedded *e);
/* Stops PostgreSQL (fast shutdown, escalating if it hangs); done runs on the
 * loop when it has exited. */
void embedded_stop(struct embedded *e, void (*done)(void *arg), void *arg);
/* Kills what still runs, removes http.address, releases DIR. */
void embedded_free(struct embedded *e);

/* Writes path atomically (temporary file, fsync, rename) with mode. */
enum sn_err sn_write_file_atomic(const char *path, const char *content, mode_t mode);
/* Writes DIR/name as sn_write_file_atomic() does. */
enum sn_err embedded_write_file(const struct embedded *e, const char *name, const char *content,
                                mode_t mode);
/* When path does not exist (a first start): creates an admin token, stores
 * its hash, then writes the token to path (0600). done gets SN_OK, also when
 * it existed. What auth.admin_token_file does outside --embedded. */
void admin_token_ensure(const char *path, struct store *store,
                        void (*done)(enum sn_err rc, void *arg), void *arg);
/* admin_token_ensure() of DIR/admin.token. */
void embedded_ensure_admin_token(struct embedded *e, struct store *store,
                                 void (*done)(enum sn_err rc, void *arg), void *arg);

/* Exposed for tests: the pid in a postmaster.pid file, or -1. */
pid_t embedded_read_pidfile(const char *path);
/* Exposed for tests: conninfo value quoting ('...' with \ and ' escaped). */
void embedded_quote_conninfo(const char *value, char *out, size_t outlen);

#endif
