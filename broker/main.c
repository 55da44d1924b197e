/* Start-up and shutdown order, signals, the event loop. */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "audit.h"
#include "auth.h"
#include "cluster.h"
#include "curl_loop.h"
#include "digest_clock.h"
#include "outbox.h"
#include "sink_email.h"
#include "sink_kafka.h"
#include "sink_webhook.h"
#include "embedded.h"
#include "ingest.h"
#include "ingest_kafka.h"
#include "kafka.h"
#include "leader.h"
#include "log.h"
#include "rules.h"
#include "metrics.h"
#include "store.h"
#include "tls.h"

#define HARD_DEADLINE_MS 9500 /* SIGTERM to exit: within 10 s, whatever hangs */
#define DRAIN_POLL_MS    50

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sn-broker [--config FILE] [--embedded DIR] [--log-level LEVEL]\n"
            "       sn-broker --help | --version\n"
            "\n"
            "Turns finalized child fatality and near-fatality reviews into cross-jurisdictional\n"
            "Safety Notices: ingests review events over HTTP and Kafka, stores them in\n"
            "PostgreSQL, and serves the HTTP API.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      read configuration from FILE (INI: [section] key = value)\n"
            "  -e, --embedded DIR     no setup: run a private PostgreSQL cluster under DIR and,\n"
            "                         unless kafka.bootstrap_servers is set, an in-memory mock\n"
            "                         Kafka cluster; writes DIR/http.address, DIR/kafka.bootstrap\n"
            "                         and DIR/admin.token\n"
            "  -l, --log-level LEVEL  debug, info, warn or error (overrides log.level)\n"
            "  -h, --help             show this help\n"
            "  -V, --version          show the version\n"
            "\n"
            "Configuration keys (file: [section] key = value; environment: SN_SECTION_KEY,\n"
            "which overrides the file):\n");
    conf_print_keys(out);
    fprintf(out, "\nExit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on bad\n"
                 "usage or configuration.\n");
}

static void on_loop_done(void *arg)
{
    struct broker *b = arg;
    event_base_loopbreak(b->base);
}

/* Attempts in flight are aborted (their done callbacks still run and queue
 * their results; what is not recorded is attempted again when its lease
 * ends), the producer flushed: its delivery reports reach the Kafka sink,
 * which must outlive the producer, as the outbox must outlive its sinks. */
static void free_delivery(struct broker *b)
{
    curl_loop_free(b->curl);
    b->curl = NULL;
    kafka_free(b->kafka, 2000);
    b->kafka = NULL;
    outbox_free(b->outbox);
    b->outbox = NULL;
    for (size_t i = 0; i < b->nsinks; i++)
        b->sinks[i]->ops->free(b->sinks[i]);
    b->nsinks = 0;
}

/* In-flight requests are done (or out of time): close everything in order. */
static void finish_shutdown(struct broker *b)
{
    evtimer_del(b->drain_ev);
    /* the store answers what is in flight before its users go; Kafka
     * ingestion stores no offset it has not committed */
    store_free(b->store);
    b->store = NULL;
    cluster_free(b->cluster);
    b->cluster = NULL;
    digest_clock_free(b->digest);
    b->digest = NULL;
    ingest_free(b->ingest);
    b->ingest = NULL;
    ingest_kafka_free(b->ingest_kafka);
    b->ingest_kafka = NULL;
    leader_free(b->leader);
    b->leader = NULL;
    auth_free(b->auth);
    b->auth = NULL;
    free_delivery(b);
    kafka_mock_free(b->kafka_mock);
    b->kafka_mock = NULL;
    if (b->embedded)
        embedded_stop(b->embedded, on_loop_done, b);
    else
        on_loop_done(b);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    size_t inflight = http_server_inflight(b->http) + ingest_pending(b->ingest) +
                      ingest_kafka_inflight(b->ingest_kafka) + outbox_busy(b->outbox) +
                      audit_inflight() + cluster_busy(b->cluster);
    double waited_ms = (http_now() - b->shutdown_started_at) * 1000;
    if (inflight == 0 || waited_ms >= (double)b->conf.shutdown_timeout_ms) {
        if (inflight)
            log_warn(json_pack("{s:I}", "inflight", (json_int_t)inflight),
                     "shutdown timeout reached with requests in flight");
        finish_shutdown(b);
        return;
    }
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};
    evtimer_add(b->drain_ev, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    log_error(NULL, "shutdown did not finish in time; stopping now");
    event_base_loopbreak(b->base);
}

static void begin_shutdown(struct broker *b, int exit_code)
{
    if (b->shutting_down) return;
    b->shutting_down = 1;
    b->exit_code = exit_code;
    b->shutdown_started_at = http_now();
    log_info(json_pack("{s:i}", "inflight", http_server_inflight(b->http)),
             "shutting down: no new connections, finishing requests in flight");
    http_server_stop_accepting(b->http);
    ingest_kafka_pause(b->ingest_kafka, 1);
    outbox_stop(b->outbox);
    digest_clock_stop(b->digest);
    cluster_stop(b->cluster);
    struct timeval deadline = {HARD_DEADLINE_MS / 1000, (HARD_DEADLINE_MS % 1000) * 1000};
    evtimer_add(b->deadline_ev, &deadline);
    on_drain(-1, 0, b);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct broker *b = arg;
    (void)what;
    if (sig == SIGHUP) {
        log_info(NULL, "SIGHUP: reloading the rules");
        broker_reload_rules(b, NULL);
        return;
    }
    log_info(json_pack("{s:s}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM"), "signal received");
    begin_shutdown(b, 0);
}

static void announce_if_ready(struct broker *b)
{
    if (b->announced || !broker_ready(b, NULL)) return;
    if ((b->embedded || b->conf.auth_admin_token_file[0]) && !b->admin_token_ready) return;
    b->announced = 1;
    log_info(json_pack("{s:s,s:s}", "http", b->http_address, "kafka", b->kafka_bootstrap), "ready");
    if (b->embedded) {
        /* scripts wait for this file: it appears once the API answers */
        char line[320];
        snprintf(line, sizeof(line), "%s\n", b->http_address);
        if (embedded_write_file(b->embedded, "http.address", line, 0644) != SN_OK) {
            begin_shutdown(b, 1);
            return;
        }
        const char *scheme = b->conf.tls_cert_file[0] ? "https" : "http";
        printf("\nsn-broker is ready (embedded mode, data in %s)\n"
               "  HTTP API         %s://%s  (try: curl %s://%s/readyz)\n"
               "  Kafka bootstrap  %s%s\n"
               "  Admin token      %s/admin.token\n"
               "Stop with Ctrl-C.\n\n",
               embedded_dir(b->embedded), scheme, b->http_address, scheme, b->http_address,
               b->kafka_bootstrap, b->kafka_mock ? "  (in-memory mock cluster: not durable)" : "",
               embedded_dir(b->embedded));
        fflush(stdout);
    }
}

static void on_admin_token(enum sn_err rc, void *arg)
{
    struct broker *b = arg;
    if (rc != SN_OK) {
        log_error(json_pack("{s:s}", "error", sn_strerror(rc)), "cannot create the admin token");
        begin_shutdown(b, 1);
        return;
    }
    b->admin_token_ready = 1;
    announce_if_ready(b);
}

static void on_store_state(struct store *s, enum store_state state, void *arg)
{
    struct broker *b = arg;
    (void)s;
    if (state == STORE_FAILED) {
        begin_shutdown(b, 1);
        return;
    }
    if (!b->shutting_down) ingest_kafka_pause(b->ingest_kafka, state != STORE_READY);
    if (state != STORE_READY) return;
    if (b->embedded && !b->admin_token_ready)
        embedded_ensure_admin_token(b->embedded, b->store, on_admin_token, b);
    else if (b->conf.auth_admin_token_file[0] && !b->admin_token_ready)
        admin_token_ensure(b->conf.auth_admin_token_file, b->store, on_admin_token, b);
    /* queued after the admin token's insert: the cache sees it */
    auth_reload(b->auth);
    cluster_beat(b->cluster);
    announce_if_ready(b);
}

static void on_store_notify(struct store *s, const char *channel, const char *payload, void *arg)
{
    struct broker *b = arg;
    (void)s;
    (void)payload;
    if (strcmp(channel, AUTH_CHANNEL) == 0) auth_reload(b->auth);
}

static void on_kafka_state(struct kafka *k, int up, void *arg)
{
    (void)k;
    if (up) announce_if_ready(arg);
}

static void on_pg_ready(struct embedded *e, void *arg)
{
    struct broker *b = arg;
    (void)e;
    if (!b->store_started) {
        b->store_started = 1;
        store_start(b->store);
        leader_start(b->leader);
        outbox_start(b->outbox);
        digest_clock_start(b->digest);
    } else {
        store_reconnect_now(b->store);
        leader_reconnect_now(b->leader);
    }
}

static void on_pg_fatal(struct embedded *e, const char *message, void *arg)
{
    (void)e;
    log_error(NULL, "%s", message);
    begin_shutdown(arg, 1);
}

static int parse_args(struct broker *b, int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},    {"embedded", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *level = NULL;
    char err[2048];
    int c;
    while ((c = getopt_long(argc, argv, "c:e:l:hV", options, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'e': b->embedded_dir = optarg; break;
        case 'l': level = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("sn-broker %s (%s)\n", SN_VERSION, SN_COMMIT); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sn-broker: unexpected argument '%s'; see --help\n", argv[optind]);
        return 2;
    }
    conf_init(&b->conf);
    if ((config && conf_load_file(&b->conf, config, err, sizeof(err)) != SN_OK) ||
        conf_load_env(&b->conf, environ, err, sizeof(err)) != SN_OK ||
        (level && conf_set(&b->conf, "log.level", level, err, sizeof(err)) != SN_OK)) {
        log_error(json_pack("{s:i}", "exit_code", 2), "configuration error: %s", err);
        return 2;
    }
    if (!b->embedded_dir && !b->conf.database_url[0]) {
        log_error(json_pack("{s:i}", "exit_code", 2),
                  "configuration error: database.url (SN_DATABASE_URL) is required unless "
                  "--embedded DIR is given");
        return 2;
    }
    if (!b->embedded_dir && !b->conf.kafka_bootstrap_servers[0]) {
        log_error(json_pack("{s:i}", "exit_code", 2),
                  "configuration error: kafka.bootstrap_servers (SN_KAFKA_BOOTSTRAP_SERVERS) is "
                  "required unless --embedded DIR is given");
        return 2;
    }
    enum log_level l;
    log_level_parse(b->conf.log_level, &l);
    log_set_level(l);
    return 0;
}

/* schemas.dir, else the schemas/ of the source tree the binary was built in
 * (build/bin, build/asan/bin), else the installed copy. */
static void find_schemas_dir(const struct conf *conf, char *out, size_t len)
{
    if (conf->schemas_dir[0]) {
        snprintf(out, len, "%s", conf->schemas_dir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        static const char *const up[] = {"/../../schemas", "/../../../schemas",
                                         "/../share/sn-broker/schemas"};
        for (size_t i = 0; i < SN_ARRAY_LEN(up); i++) {
            char probe[PATH_MAX + 64];
            snprintf(probe, sizeof(probe), "%s%s/cloudevent.v1.json", dir, up[i]);
            if (access(probe, R_OK) == 0) {
                snprintf(out, len, "%s%s", dir, up[i]);
                return;
            }
        }
    }
    snprintf(out, len, "/usr/share/sn-broker/schemas");
}

static int load_schemas(struct broker *b)
{
    static const char *const required[] = {"cloudevent.v1.json", "review-completed.v1.json",
                                           "token-request.v1.json", "subscription-request.v1.json"};
    char dir[PATH_MAX + 64], err[1024];
    find_schemas_dir(&b->conf, dir, sizeof(dir));
    if (schema_set_load(dir, &b->schemas, err, sizeof(err)) != SN_OK) {
        log_error(json_pack("{s:s,s:i}", "dir", dir, "exit_code", 2), "schemas: %s", err);
        return 2;
    }
    for (size_t i = 0; i < SN_ARRAY_LEN(required); i++) {
        if (!schema_set_has(b->schemas, required[i])) {
            log_error(json_pack("{s:s,s:i}", "dir", dir, "exit_code", 2),
                      "schemas: %s is missing (schemas.dir)", required[i]);
            return 2;
        }
    }
    if (ingest_check_types(b->schemas, err, sizeof(err)) != SN_OK) {
        log_error(json_pack("{s:s,s:i}", "dir", dir, "exit_code", 2), "schemas: %s", err);
        return 2;
    }
    log_info(json_pack("{s:s}", "dir", dir), "schemas loaded");
    return 0;
}

/* Logs each problem of a rules load: file, rule, pointer and message. */
static void log_rule_errors(const json_t *errors)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        log_error(json_pack("{s:O,s:O,s:O}", "file", json_object_get(e, "file"), "rule",
                            json_object_get(e, "rule"), "pointer", json_object_get(e, "pointer")),
                  "rules: %s", json_string_value(json_object_get(e, "message")));
    }
}

/* 1 (and an error in errors) when a rule of rs counts facts further back
 * than retention.events or retention.facts keeps them: they would be deleted
 * while a window still needs them. */
static int retention_refuses(const struct broker *b, const struct rule_set *rs, json_t *errors)
{
    const char *rule;
    int64_t horizon = rule_set_horizon(rs, &rule);
    const struct {
        const char *key;
        int64_t ms;
    } limits[] = {{"retention.events", b->conf.retention_events_ms},
                  {"retention.facts", b->conf.retention_facts_ms}};
    for (size_t i = 0; i < SN_ARRAY_LEN(limits); i++) {
        if (limits[i].ms == 0 || limits[i].ms >= horizon) continue;
        char message[300], back[32], kept[32];
        rule_format_duration(horizon, back, sizeof(back));
        rule_format_duration(limits[i].ms, kept, sizeof(kept));
        snprintf(message, sizeof(message),
                 "the rule counts facts up to %s back (its window%s), longer than %s (%s) keeps "
                 "them; raise %s or shorten the window",
                 back, rule_has_growth(rule_set_find(rs, rule)) ? ", twice for growth" : "",
                 limits[i].key, kept, limits[i].key);
        json_array_append_new(errors, json_pack("{s:n,s:s,s:s,s:s}", "file", "rule", rule,
                                                "pointer", "/window", "message", message));
        return 1;
    }
    return 0;
}

/* Loads rules.path and, when it is sound, hands it to the engine in place of
 * the running set; every problem is logged (and appended to errors, if not
 * NULL). */
static enum sn_err swap_rules(struct broker *b, json_t *errors)
{
    json_t *found = json_array();
    struct rule_set *rs = NULL;
    enum sn_err rc = rules_load(b->rules_path, b->schemas, &rs, found);
    if (rc == SN_OK && retention_refuses(b, rs, found)) {
        rule_set_free(rs);
        rc = SN_ERR_CONF;
    }
    log_rule_errors(found);
    if (errors) json_array_extend(errors, found);
    json_decref(found);
    if (rc != SN_OK) return rc;
    if (b->leader) leader_set_rules(b->leader, rs);
    rule_set_free(b->rules);
    b->rules = rs;
    log_info(json_pack("{s:s,s:I}", "path", b->rules_path, "rules", (json_int_t)rule_set_count(rs)),
             "rules loaded");
    return SN_OK;
}

enum sn_err broker_reload_rules(struct broker *b, json_t *errors)
{
    if (!b->rules_path[0]) {
        if (errors)
            json_array_append_new(errors, json_pack("{s:n,s:n,s:s,s:s}", "file", "rule", "pointer",
                                                    "", "message", "rules.path is not set"));
        log_warn(NULL, "rules: nothing to reload, rules.path is not set");
        return SN_ERR_CONF;
    }
    enum sn_err rc = swap_rules(b, errors);
    if (rc != SN_OK)
        log_error(json_pack("{s:s,s:I}", "path", b->rules_path, "running",
                            (json_int_t)rule_set_count(b->rules)),
                  "rules: the reload was refused; the running rules stay");
    return rc;
}

/* rules.path, else with --embedded the deploy/rules beside the schemas (the
 * examples); none is fine: nothing is evaluated. Also the privacy options the
 * engine applies. */
static int load_rules(struct broker *b)
{
    b->engine_options.min_cell = (size_t)b->conf.privacy_min_cell;
    size_t n = 0;
    b->unnamed = xcalloc(1, sizeof(*b->unnamed));
    char *list = xstrdup(b->conf.privacy_unnamed_jurisdictions), *save = NULL;
    for (char *code = strtok_r(list, ", ", &save); code; code = strtok_r(NULL, ", ", &save)) {
        b->unnamed = xrealloc(b->unnamed, (n + 2) * sizeof(*b->unnamed));
        b->unnamed[n++] = xstrdup(code);
        b->unnamed[n] = NULL;
    }
    free(list);
    b->engine_options.unnamed = (const char *const *)b->unnamed;
    b->engine_options.unnamed_count = n;
    b->engine_options.default_topic = b->conf.kafka_notices_topic;

    if (b->conf.rules_path[0]) {
        snprintf(b->rules_path, sizeof(b->rules_path), "%s", b->conf.rules_path);
    } else if (b->embedded_dir) {
        char dir[PATH_MAX + 64];
        find_schemas_dir(&b->conf, dir, sizeof(dir));
        char examples[PATH_MAX + 80], resolved[PATH_MAX];
        snprintf(examples, sizeof(examples), "%s/../deploy/rules", dir);
        if (realpath(examples, resolved))
            snprintf(b->rules_path, sizeof(b->rules_path), "%s", resolved);
    }
    if (!b->rules_path[0]) {
        log_warn(NULL, "no rules (rules.path is not set): notices are not evaluated");
        return 0;
    }
    if (swap_rules(b, NULL) != SN_OK) {
        log_error(json_pack("{s:s,s:i}", "path", b->rules_path, "exit_code", 2),
                  "rules: cannot load rules.path");
        return 2;
    }
    return 0;
}

/* Everything up to the event loop; returns an exit code, 0 to run. */
/* A password from the file that key names (smtp.password_file,
 * kafka.sasl_password_file: never from the command line or the config file
 * itself); its last line break dropped. */
static int read_password(const char *key, const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error(json_pack("{s:s,s:s,s:s}", "key", key, "file", path, "error", strerror(errno)),
                  "cannot read the password file");
        return -1;
    }
    size_t n = fread(out, 1, len - 1, f);
    fclose(f);
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* The sinks and the dispatcher; its connection starts with the store's. */
static int start_delivery(struct broker *b, const char *conninfo)
{
    struct outbox_options oo = {0};
    oo.schedule_len =
        conf_parse_durations(b->conf.delivery_retry_schedule, oo.schedule_ms, CONF_MAX_DURATIONS);
    oo.conninfo = conninfo;
    oo.reconnect_max_ms = b->conf.database_reconnect_max_ms;
    oo.query_timeout_ms = b->conf.database_query_timeout_ms;
    oo.per_target = (int)b->conf.webhook_max_per_endpoint;
    oo.breaker_threshold = (int)b->conf.delivery_breaker_threshold;
    oo.breaker_cooldown_ms = b->conf.delivery_breaker_cooldown_ms;
    oo.max_inflight = 512;
    /* longer than any attempt may take (a Kafka message times out in 30 s) */
    int64_t longest = b->conf.webhook_timeout_ms > b->conf.smtp_timeout_ms
                          ? b->conf.webhook_timeout_ms
                          : b->conf.smtp_timeout_ms;
    oo.lease_ms = (longest > 30000 ? longest : 30000) + 10000;

    b->curl = curl_loop_new(b->base);
    if (!b->curl) {
        log_error(NULL, "cannot start libcurl's multi interface");
        return -1;
    }
    b->sinks[b->nsinks++] = sink_kafka_new(b->kafka);
    const struct sink_webhook_options wo = {b->conf.webhook_timeout_ms, b->conf.webhook_ca_file,
                                            strcmp(b->conf.webhook_allow_private_targets, "true") ==
                                                0};
    b->sinks[b->nsinks++] = sink_webhook_new(b->curl, &wo);
    if (b->conf.smtp_url[0]) {
        char password[1024] = "";
        if (b->conf.smtp_password_file[0] &&
            read_password("smtp.password_file", b->conf.smtp_password_file, password,
                          sizeof(password)) != 0)
            return -1;
        const struct mail_server ms = {b->conf.smtp_url,
                                       b->conf.smtp_username[0] ? b->conf.smtp_username : NULL,
                                       password[0] ? password : NULL,
                                       b->conf.smtp_ca_file[0] ? b->conf.smtp_ca_file : NULL,
                                       strcmp(b->conf.smtp_starttls, "required") == 0,
                                       (long)b->conf.smtp_timeout_ms};
        char why[512];
        if (mail_server_check(&ms, why, sizeof(why)) != SN_OK) {
            log_error(json_pack("{s:i}", "exit_code", 2), "smtp.url: %s", why);
            explicit_bzero(password, sizeof(password));
            return -1;
        }
        b->sinks[b->nsinks++] = sink_email_new(b->curl, &ms, b->conf.smtp_from);
        explicit_bzero(password, sizeof(password));
    }
    b->outbox = outbox_new(b->base, &oo, b->sinks, b->nsinks);
    b->digest = digest_clock_new(b);
    return 0;
}

/* The limits and TLS of the HTTP listener (http.*, tls.*). Returns an exit
 * code, 0 to go on. */
static int configure_listener(struct broker *b)
{
    const struct conf *c = &b->conf;
    const struct http_limits limits = {(unsigned)c->http_max_connections, c->http_read_timeout_ms,
                                       (size_t)c->http_max_header_size,
                                       (unsigned)c->http_rate_limit, (unsigned)c->http_rate_burst};
    http_server_set_limits(b->http, &limits);
    const char *problem = NULL;
    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        problem = "tls.cert_file and tls.key_file go together";
    else if (!c->tls_cert_file[0] && (c->tls_client_ca_file[0] || c->tls_client_map[0]))
        problem = "tls.client_ca_file and tls.client_map need tls.cert_file and tls.key_file";
    else if (c->tls_client_map[0] && !c->tls_client_ca_file[0])
        problem = "tls.client_map needs tls.client_ca_file (the CA of the client certificates)";
    if (problem) {
        log_error(json_pack("{s:i}", "exit_code", 2), "configuration error: %s", problem);
        return 2;
    }
    if (!c->tls_cert_file[0]) return 0;
    const struct tls_options o = {c->tls_cert_file, c->tls_key_file, c->tls_client_ca_file,
                                  strcmp(c->tls_client_auth, "required") == 0};
    char err[1024];
    SSL_CTX *ctx = tls_server_ctx_new(&o, err, sizeof(err));
    if (!ctx) {
        log_error(json_pack("{s:i}", "exit_code", 2), "configuration error: %s", err);
        return 2;
    }
    http_server_set_tls(b->http, ctx);
    log_info(json_pack("{s:s}", "client_certificates",
                       !c->tls_client_ca_file[0] ? "not asked for" : c->tls_client_auth),
             "TLS on the HTTP API (1.2 and 1.3)");
    return 0;
}

static int start(struct broker *b)
{
    char err[1024];
    enum sn_err rc;
    int code = load_schemas(b);
    if (code) return code;
    code = load_rules(b);
    if (code) return code;
    if (b->embedded_dir) {
        /* before any thread exists: it forks to check the directory */
        rc = embedded_open(b->embedded_dir, &b->conf, &b->embedded, err, sizeof(err));
        if (rc != SN_OK) {
            log_error(NULL, "embedded mode: %s", err);
            return 1;
        }
    }
    b->base = event_base_new();
    if (!b->base) sn_oom(0);
    signal(SIGPIPE, SIG_IGN);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < SN_ARRAY_LEN(sigs); i++) {
        b->signal_evs[i] = evsignal_new(b->base, sigs[i], on_signal, b);
        if (!b->signal_evs[i]) sn_oom(0);
        event_add(b->signal_evs[i], NULL);
    }
    b->drain_ev = evtimer_new(b->base, on_drain, b);
    b->deadline_ev = evtimer_new(b->base, on_deadline, b);
    metrics_register("sn_build_info", METRIC_GAUGE, "Version and commit of this sn-broker");
    char labels[256];
    snprintf(labels, sizeof(labels), "version=\"%s\",commit=\"%s\"", SN_VERSION, SN_COMMIT);
    metrics_gauge_set("sn_build_info", labels, 1);

    snprintf(b->kafka_bootstrap, sizeof(b->kafka_bootstrap), "%s", b->conf.kafka_bootstrap_servers);
    if (b->embedded && !b->kafka_bootstrap[0]) {
        rc =
            kafka_mock_start((int)b->conf.embedded_kafka_brokers, &b->kafka_mock, err, sizeof(err));
        if (rc != SN_OK) {
            log_error(NULL, "cannot start the mock Kafka cluster: %s", err);
            return 1;
        }
        snprintf(b->kafka_bootstrap, sizeof(b->kafka_bootstrap), "%s",
                 kafka_mock_bootstrap(b->kafka_mock));
        const char *topics[] = {b->conf.kafka_reviews_topic, b->conf.kafka_dlq_topic};
        for (size_t i = 0; i < SN_ARRAY_LEN(topics); i++)
            if (kafka_mock_create_topic(b->kafka_mock, topics[i], 3) != SN_OK)
                log_warn(json_pack("{s:s}", "topic", topics[i]), "cannot create a mock topic");
        char line[1100];
        snprintf(line, sizeof(line), "%s\n", b->kafka_bootstrap);
        if (embedded_write_file(b->embedded, "kafka.bootstrap", line, 0644) != SN_OK) return 1;
        log_warn(json_pack("{s:s,s:I}", "bootstrap", b->kafka_bootstrap, "brokers",
                           (json_int_t)b->conf.embedded_kafka_brokers),
                 "Kafka is librdkafka's in-memory mock cluster: not durable, its topics are "
                 "lost on exit; set kafka.bootstrap_servers for a real cluster");
    }
    char sasl_password[1024] = "";
    if (b->conf.kafka_sasl_password_file[0] &&
        read_password("kafka.sasl_password_file", b->conf.kafka_sasl_password_file, sasl_password,
                      sizeof(sasl_password)) != 0)
        return 2;
    const struct kafka_security ks = {b->conf.kafka_security_protocol, b->conf.kafka_sasl_mechanism,
                                      b->conf.kafka_sasl_username,     sasl_password,
                                      b->conf.kafka_ssl_ca_file,       b->conf.kafka_ssl_cert_file,
                                      b->conf.kafka_ssl_key_file};
    const struct kafka_hooks kh = {on_kafka_state, b};
    rc = kafka_new(b->base, b->kafka_bootstrap, &ks, &kh, &b->kafka, err, sizeof(err));
    if (rc != SN_OK) {
        explicit_bzero(sasl_password, sizeof(sasl_password));
        /* librdkafka connects later: what fails here is its configuration (a
         * CA file that is not there, a SASL mechanism it was built without) */
        log_error(json_pack("{s:i}", "exit_code", 2), "cannot create the Kafka producer: %s", err);
        return 2;
    }

    b->http = http_server_new(b->base, broker_routes, broker_routes_count,
                              (size_t)b->conf.http_max_body_size, b);
    code = configure_listener(b);
    if (code) return code;
    if (http_server_listen(b->http, b->conf.http_listen, b->http_address,
                           sizeof(b->http_address)) != SN_OK) {
        log_error(json_pack("{s:s,s:s}", "listen", b->conf.http_listen, "error", strerror(errno)),
                  "cannot listen on http.listen");
        return 1;
    }
    log_info(json_pack("{s:s,s:b}", "address", b->http_address, "tls", b->conf.tls_cert_file[0]),
             "http listening");

    const struct store_hooks sh = {on_store_state, on_store_notify, b};
    const char *conninfo = b->embedded ? embedded_conninfo(b->embedded) : b->conf.database_url;
    b->store = store_new(b->base, conninfo, b->conf.database_reconnect_max_ms, &sh);
    store_set_query_timeout(b->store, b->conf.database_query_timeout_ms);
    store_listen(b->store, AUTH_CHANNEL);
    b->auth = auth_new(b->store);
    if (b->conf.tls_client_map[0]) {
        if (auth_clients_load(b->auth, b->conf.tls_client_map, err, sizeof(err)) != SN_OK) {
            log_error(json_pack("{s:i}", "exit_code", 2), "configuration error: %s", err);
            return 2;
        }
        log_info(json_pack("{s:s,s:I}", "file", b->conf.tls_client_map, "subjects",
                           (json_int_t)auth_clients_count(b->auth)),
                 "client certificate map loaded");
    }
    b->ingest = ingest_new(b->store);
    b->cluster = cluster_new(b);
    const struct leader_conf lc = {conninfo, b->conf.database_reconnect_max_ms,
                                   b->conf.database_query_timeout_ms, b->conf.rules_tick_ms,
                                   &b->engine_options};
    b->leader = leader_new(b->base, &lc);
    leader_set_rules(b->leader, b->rules);
    const struct ingest_kafka_conf ikc = {b->kafka_bootstrap, b->conf.kafka_reviews_topic,
                                          b->conf.kafka_dlq_topic, b->conf.kafka_group_id, &ks};
    rc = ingest_kafka_new(b->base, &ikc, b->schemas, b->ingest, b->store, b->kafka,
                          &b->ingest_kafka, err, sizeof(err));
    explicit_bzero(sasl_password, sizeof(sasl_password)); /* librdkafka keeps its copy */
    if (rc != SN_OK) {
        log_error(json_pack("{s:i}", "exit_code", 2), "cannot start Kafka ingestion: %s", err);
        return 2;
    }
    ingest_kafka_pause(b->ingest_kafka, 1); /* until the database is ready */
    if (start_delivery(b, conninfo) != 0) return 2;
    if (b->embedded) {
        const struct embedded_hooks eh = {on_pg_ready, on_pg_fatal, b};
        embedded_start(b->embedded, b->base, &eh);
    } else {
        b->store_started = 1;
        store_start(b->store);
        leader_start(b->leader);
        outbox_start(b->outbox);
        digest_clock_start(b->digest);
    }
    return 0;
}

static void cleanup(struct broker *b)
{
    leader_free(b->leader);
    rule_set_free(b->rules);
    for (size_t i = 0; b->unnamed && b->unnamed[i]; i++)
        free(b->unnamed[i]);
    free(b->unnamed);
    store_free(b->store);
    digest_clock_free(b->digest);
    ingest_free(b->ingest);
    ingest_kafka_free(b->ingest_kafka);
    auth_free(b->auth);
    free_delivery(b);
    kafka_mock_free(b->kafka_mock);
    http_server_free(b->http);
    schema_set_free(b->schemas);
    embedded_free(b->embedded);
    for (size_t i = 0; i < SN_ARRAY_LEN(b->signal_evs); i++)
        if (b->signal_evs[i]) event_free(b->signal_evs[i]);
    if (b->drain_ev) event_free(b->drain_ev);
    if (b->deadline_ev) event_free(b->deadline_ev);
    if (b->base) event_base_free(b->base);
    conf_free(&b->conf);
    metrics_reset();
}

int main(int argc, char **argv)
{
    struct broker b;
    memset(&b, 0, sizeof(b));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sn-broker: libcurl cannot be initialised\n");
        return 1;
    }
    int code = parse_args(&b, argc, argv);
    if (code == 0) {
        log_info(json_pack("{s:s,s:s,s:s}", "version", SN_VERSION, "commit", SN_COMMIT, "mode",
                           b.embedded_dir ? "embedded" : "external"),
                 "sn-broker starting");
        code = start(&b);
        if (code == 0) {
            event_base_dispatch(b.base);
            code = b.exit_code;
            log_info(json_pack("{s:i}", "exit_code", code), "sn-broker stopped");
        }
    }
    cleanup(&b);
    curl_global_cleanup();
    return code;
}
