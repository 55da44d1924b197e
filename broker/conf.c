#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum conf_type {
    CONF_STRING,
    CONF_INT,
    CONF_DURATION,
    CONF_SIZE,
    CONF_CHOICE,
    CONF_ADDRESS,
    CONF_CONNINFO,
    CONF_DURATIONS /* a comma-separated list of durations, kept as text */
};

struct conf_key {
    const char *section;
    const char *key;
    enum conf_type type;
    size_t offset;
    const char *default_value;
    int64_t min, max;       /* CONF_INT, CONF_DURATION (milliseconds) */
    const char *choices[6]; /* CONF_CHOICE, NULL-terminated */
    const char *help;
};

#define FIELD(f) offsetof(struct conf, f)

/* clang-format off */
/* one key per entry reads better than one field per line */
static const struct conf_key conf_keys[] = {
    {"http", "listen", CONF_ADDRESS, FIELD(http_listen), "127.0.0.1:8080", 0, 0, {NULL},
     "address of the HTTP API, host:port; port 0 picks a free port"},
    {"http", "max_body_size", CONF_SIZE, FIELD(http_max_body_size), "1MiB", 1024,
     1024LL * 1024 * 1024, {NULL}, "largest request body accepted (larger: 413)"},
    {"http", "max_header_size", CONF_SIZE, FIELD(http_max_header_size), "16KiB", 1024,
     1024 * 1024, {NULL},
     "largest request line and headers accepted (larger: 431; over 4 times this libevent "
     "answers 400 and closes the connection)"},
    {"http", "max_connections", CONF_INT, FIELD(http_max_connections), "1024", 0, 1000000, {NULL},
     "open client connections at most; one more is closed at once; 0: no limit"},
    {"http", "read_timeout", CONF_DURATION, FIELD(http_read_timeout_ms), "30s", 1000, 3600000,
     {NULL}, "a request (headers and body) must arrive whole within this of the connection "
     "opening or the previous reply; also how long an idle connection stays open"},
    {"http", "rate_limit", CONF_INT, FIELD(http_rate_limit), "0", 0, 1000000, {NULL},
     "requests per second per token (or client certificate), on average; over it: 429 with "
     "Retry-After; 0: no limit"},
    {"http", "rate_burst", CONF_INT, FIELD(http_rate_burst), "100", 1, 1000000, {NULL},
     "requests one token may make at once before http.rate_limit applies (its bucket's size)"},
    {"tls", "cert_file", CONF_STRING, FIELD(tls_cert_file), "", 0, 0, {NULL},
     "server certificate chain (PEM) of the HTTP API; empty: plain HTTP"},
    {"tls", "key_file", CONF_STRING, FIELD(tls_key_file), "", 0, 0, {NULL},
     "private key (PEM) of tls.cert_file"},
    {"tls", "client_ca_file", CONF_STRING, FIELD(tls_client_ca_file), "", 0, 0, {NULL},
     "CA certificates (PEM) client certificates are verified against; empty: none asked for"},
    {"tls", "client_auth", CONF_CHOICE, FIELD(tls_client_auth), "required", 0, 0,
     {"required", "optional", NULL},
     "with tls.client_ca_file: required refuses a handshake without a valid client "
     "certificate; optional also lets clients in without one (they use bearer tokens)"},
    {"tls", "client_map", CONF_STRING, FIELD(tls_client_map), "", 0, 0, {NULL},
     "file mapping client certificate subjects to a role and jurisdiction, one per line: "
     "<subject DN, RFC 2253>  <role>  [<jurisdiction>]"},
    {"schemas", "dir", CONF_STRING, FIELD(schemas_dir), "", 0, 0, {NULL},
     "directory of the JSON Schemas and vocabulary; empty: the schemas/ beside the binary's "
     "source tree, then /usr/share/sn-broker/schemas"},
    {"database", "url", CONF_CONNINFO, FIELD(database_url), "", 0, 0, {NULL},
     "libpq connection string or URI; required unless --embedded"},
    {"database", "reconnect_max", CONF_DURATION, FIELD(database_reconnect_max_ms), "30s", 100,
     3600000, {NULL}, "longest wait between reconnection attempts (backoff doubles up to this)"},
    {"database", "query_timeout", CONF_DURATION, FIELD(database_query_timeout_ms), "30s", 0,
     3600000, {NULL}, "a query unanswered this long drops the connection (a hung server); 0: never"},
    {"kafka", "bootstrap_servers", CONF_STRING, FIELD(kafka_bootstrap_servers), "", 0, 0, {NULL},
     "host:port[,host:port...]; empty with --embedded starts an in-memory mock cluster"},
    {"kafka", "reviews_topic", CONF_STRING, FIELD(kafka_reviews_topic), "reviews.completed", 0, 0,
     {NULL}, "topic the broker consumes review.completed events from"},
    {"kafka", "dlq_topic", CONF_STRING, FIELD(kafka_dlq_topic), "reviews.completed.dlq", 0, 0,
     {NULL}, "topic that receives a copy of each refused message, with an sn-error header"},
    {"kafka", "group_id", CONF_STRING, FIELD(kafka_group_id), "sn-broker", 0, 0, {NULL},
     "consumer group of the broker processes (they share the partitions)"},
    {"embedded", "kafka_brokers", CONF_INT, FIELD(embedded_kafka_brokers), "1", 1, 9, {NULL},
     "number of brokers of the embedded mock Kafka cluster"},
    {"embedded", "pg_bindir", CONF_STRING, FIELD(embedded_pg_bindir), "", 0, 0, {NULL},
     "directory of initdb and postgres; empty searches PATH and /usr/lib/postgresql/*/bin"},
    {"embedded", "pg_user", CONF_STRING, FIELD(embedded_pg_user), "postgres", 0, 0, {NULL},
     "system user that runs the embedded PostgreSQL when sn-broker runs as root"},
    {"log", "level", CONF_CHOICE, FIELD(log_level), "info", 0, 0,
     {"debug", "info", "warn", "error", NULL}, "lowest level written to stderr"},
    {"rules", "path", CONF_STRING, FIELD(rules_path), "", 0, 0, {NULL},
     "rules file, or directory of *.json rule files; empty: no rules (with --embedded: the "
     "deploy/rules beside the schemas)"},
    {"rules", "tick", CONF_DURATION, FIELD(rules_tick_ms), "1m", 0, 86400000, {NULL},
     "how often the engine's clock moves to the wall clock, so notices resolve when reviews stop "
     "coming; 0s: event time only (what a backtest does)"},
    {"privacy", "min_cell", CONF_INT, FIELD(privacy_min_cell), "3", 0, 1000, {NULL},
     "notice breakdown counts below this are shown as \"<N\" (small cells can identify a child)"},
    {"privacy", "unnamed_jurisdictions", CONF_STRING, FIELD(privacy_unnamed_jurisdictions), "", 0,
     0, {NULL}, "comma-separated jurisdiction codes counted in notices but never named"},
    {"notices", "cap_sender", CONF_STRING, FIELD(notices_cap_sender), "sn-broker@npcs.example", 0,
     0, {NULL}, "sender of CAP alerts (GET /v1/notices/{id}?format=cap); no spaces, commas, < or &"},
    {"kafka", "notices_topic", CONF_STRING, FIELD(kafka_notices_topic), "safety-notices", 0, 0,
     {NULL}, "topic notices are published to when their rule names none"},
    {"webhook", "allow_private_targets", CONF_CHOICE, FIELD(webhook_allow_private_targets),
     "false", 0, 0, {"false", "true", NULL},
     "true: webhooks may go to loopback, private and link-local addresses (tests, an intranet)"},
    {"webhook", "timeout", CONF_DURATION, FIELD(webhook_timeout_ms), "10s", 100, 300000, {NULL},
     "a webhook attempt that has not answered this long fails (and is retried)"},
    {"webhook", "ca_file", CONF_STRING, FIELD(webhook_ca_file), "", 0, 0, {NULL},
     "CA certificates (PEM) that HTTPS webhook targets are verified against; empty: the system's"},
    {"webhook", "max_per_endpoint", CONF_INT, FIELD(webhook_max_per_endpoint), "4", 1, 1000,
     {NULL}, "attempts in flight at once to one target, per process"},
    {"webhook", "secret_overlap", CONF_DURATION, FIELD(webhook_secret_overlap_ms), "24h", 0,
     2592000000LL, {NULL}, "after a secret is rotated, how long the previous one still signs"},
    {"smtp", "url", CONF_STRING, FIELD(smtp_url), "", 0, 0, {NULL},
     "mail server: smtp://host:port (STARTTLS) or smtps://host:port (implicit TLS); empty: no "
     "email deliveries"},
    {"smtp", "from", CONF_STRING, FIELD(smtp_from), "sn-broker@localhost", 0, 0, {NULL},
     "sender address of notice emails"},
    {"smtp", "username", CONF_STRING, FIELD(smtp_username), "", 0, 0, {NULL},
     "SMTP AUTH user; empty: no AUTH"},
    {"smtp", "password_file", CONF_STRING, FIELD(smtp_password_file), "", 0, 0, {NULL},
     "file holding the SMTP password (never on the command line)"},
    {"smtp", "starttls", CONF_CHOICE, FIELD(smtp_starttls), "required", 0, 0,
     {"required", "off", NULL},
     "smtp:// URLs: required refuses to send without STARTTLS; off sends in the clear "
     "(loopback tests only)"},
    {"smtp", "ca_file", CONF_STRING, FIELD(smtp_ca_file), "", 0, 0, {NULL},
     "CA certificates (PEM) the mail server is verified against; empty: the system's"},
    {"smtp", "timeout", CONF_DURATION, FIELD(smtp_timeout_ms), "30s", 100, 600000, {NULL},
     "an SMTP session that has not finished this long fails (and is retried)"},
    {"delivery", "retry_schedule", CONF_DURATIONS, FIELD(delivery_retry_schedule),
     "5s,5m,30m,2h,5h,10h,10h", 0, 0, {NULL},
     "waits between attempts after the first (each +-10% jitter); past the last one a delivery is "
     "dead-lettered (Kafka deliveries retry at the first wait forever)"},
    {"delivery", "breaker_threshold", CONF_INT, FIELD(delivery_breaker_threshold), "5", 1, 1000,
     {NULL}, "consecutive failures of one target that open its circuit breaker"},
    {"delivery", "breaker_cooldown", CONF_DURATION, FIELD(delivery_breaker_cooldown_ms), "30s",
     0, 3600000, {NULL}, "how long an open breaker holds that target's deliveries back"},
    {"shutdown", "timeout", CONF_DURATION, FIELD(shutdown_timeout_ms), "5s", 0, 9000, {NULL},
     "how long SIGTERM waits for in-flight requests before closing"},
    {"http", "public_url", CONF_STRING, FIELD(http_public_url), "", 0, 0, {NULL},
     "the broker's address as people reach it (https://sn.example.org), for links in digests; "
     "empty: http(s)://http.listen"},
    {"digest", "tick", CONF_DURATION, FIELD(digest_tick_ms), "30s", 100, 3600000, {NULL},
     "how often the digest clock looks for periods that have ended"},
    {"digest", "clock_offset", CONF_DURATION, FIELD(digest_clock_offset_ms), "0s", 0,
     34560000000LL, {NULL},
     "for tests only: the digest clock runs this far ahead of the wall clock (a restart with a "
     "larger offset is a broker that was down while periods ended)"},
    {"dashboard", "session_lifetime", CONF_DURATION, FIELD(dashboard_session_lifetime_ms), "12h",
     60000, 2592000000LL, {NULL},
     "how long a /dashboard sign-in lasts (its session and cookie), from 1m to 30d"},
    {"kafka", "security_protocol", CONF_CHOICE, FIELD(kafka_security_protocol), "plaintext", 0, 0,
     {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl", NULL},
     "how the broker's producer and consumer reach Kafka (librdkafka security.protocol)"},
    {"kafka", "sasl_mechanism", CONF_CHOICE, FIELD(kafka_sasl_mechanism), "SCRAM-SHA-512", 0, 0,
     {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL},
     "with sasl_*: the SASL mechanism (librdkafka sasl.mechanism)"},
    {"kafka", "sasl_username", CONF_STRING, FIELD(kafka_sasl_username), "", 0, 0, {NULL},
     "with sasl_*: the SASL user name"},
    {"kafka", "sasl_password_file", CONF_STRING, FIELD(kafka_sasl_password_file), "", 0, 0,
     {NULL}, "with sasl_*: file holding the SASL password (never on the command line)"},
    {"kafka", "ssl_ca_file", CONF_STRING, FIELD(kafka_ssl_ca_file), "", 0, 0, {NULL},
     "with ssl or sasl_ssl: CA certificates (PEM) the Kafka brokers are verified against; "
     "empty: the system's"},
    {"kafka", "ssl_cert_file", CONF_STRING, FIELD(kafka_ssl_cert_file), "", 0, 0, {NULL},
     "with ssl or sasl_ssl: the broker's client certificate (PEM), when Kafka asks for one"},
    {"kafka", "ssl_key_file", CONF_STRING, FIELD(kafka_ssl_key_file), "", 0, 0, {NULL},
     "private key (PEM) of kafka.ssl_cert_file"},
    {"retention", "events", CONF_DURATION, FIELD(retention_events_ms), "0s", 0,
     INT64_C(3153600000000), {NULL},
     "raw events (the reviews as received, free text included) received longer ago than this "
     "are deleted, and the reviews they carry; 0s: kept; never shorter than the longest rule "
     "window"},
    {"retention", "facts", CONF_DURATION, FIELD(retention_facts_ms), "0s", 0,
     INT64_C(3153600000000), {NULL},
     "facts whose event time is longer ago than this are deleted once evaluated; 0s: kept; never "
     "shorter than the longest rule window"},
    {"retention", "delivery_attempts", CONF_DURATION, FIELD(retention_delivery_attempts_ms), "0s",
     0, INT64_C(3153600000000), {NULL},
     "delivery attempts recorded longer ago than this are deleted; 0s: kept"},
    {"retention", "interval", CONF_DURATION, FIELD(retention_interval_ms), "1h", 1000, 604800000,
     {NULL}, "how often the rule-engine leader applies the retention"},
    {"cluster", "heartbeat", CONF_DURATION, FIELD(cluster_heartbeat_ms), "5s", 100, 600000,
     {NULL},
     "how often each process records that it is alive (snctl status; three missed: shown as "
     "gone)"},
    {"auth", "admin_token_file", CONF_STRING, FIELD(auth_admin_token_file), "", 0, 0, {NULL},
     "first start outside --embedded: when this file does not exist, an admin token is created "
     "and written to it (0600); once it exists nothing is done (--embedded: DIR/admin.token)"},
};
/* clang-format on */

static char **string_field(struct conf *conf, const struct conf_key *k)
{
    return (char **)((char *)conf + k->offset);
}

static int64_t *int_field(struct conf *conf, const struct conf_key *k)
{
    return (int64_t *)((char *)conf + k->offset);
}

static int is_string_type(enum conf_type t)
{
    return t == CONF_STRING || t == CONF_CHOICE || t == CONF_ADDRESS || t == CONF_CONNINFO ||
           t == CONF_DURATIONS;
}

struct unit {
    const char *suffix;
    int64_t factor;
};

/* Digits then one of the suffixes (exactly) -> the number times its factor. */
static int parse_with_units(const char *text, const struct unit *units, size_t nunits, int64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)text[0])) return -1;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text) return -1;
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > INT64_MAX / units[i].factor) return -1;
            *out = n * units[i].factor;
            return 0;
        }
    }
    return -1;
}

int conf_parse_duration(const char *text, int64_t *ms)
{
    static const struct unit units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                                        {"h", 3600000}, {"d", 86400000}, {"w", 7 * 86400000LL}};
    return parse_with_units(text, units, SN_ARRAY_LEN(units), ms);
}

int conf_parse_size(const char *text, int64_t *bytes)
{
    static const struct unit units[] = {
        {"", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024LL * 1024 * 1024}};
    return parse_with_units(text, units, SN_ARRAY_LEN(units), bytes);
}

int conf_parse_address(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') return -1;
        len = (size_t)(close - text - 1);
        text++;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) return -1;
        len = (size_t)(colon - text);
        if (memchr(text, ':', len)) return -1; /* a bare IPv6 address needs brackets */
    }
    if (len == 0 || len >= hostlen) return -1;
    memcpy(host, text, len);
    host[len] = '\0';
    const char *digits = colon + 1;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 5) return -1;
    long p = strtol(digits, NULL, 10);
    if (p > 65535) return -1;
    *port = (int)p;
    return 0;
}

int conf_parse_durations(const char *text, int64_t *list, int max)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *end = p + strcspn(p, ", ");
        char item[32];
        if (end == p || (size_t)(end - p) >= sizeof(item) || n == max) return -1;
        snprintf(item, sizeof(item), "%.*s", (int)(end - p), p);
        if (conf_parse_duration(item, &list[n]) != 0) return -1;
        n++;
        for (p = end; *p == ' '; p++)
            ;
        if (!*p) return n;
        if (*p++ != ',') return -1;
    }
}

static void describe_allowed(const struct conf_key *k, char *buf, size_t len)
{
    switch (k->type) {
    case CONF_INT:
        snprintf(buf, len, "an integer from %lld to %lld", (long long)k->min, (long long)k->max);
        break;
    case CONF_DURATION:
        snprintf(buf, len,
                 "a duration such as 500ms, 5s, 10m, 12h, 90d, 26w, from %lldms to %lldms",
                 (long long)k->min, (long long)k->max);
        break;
    case CONF_SIZE:
        snprintf(buf, len, "a size in bytes, or with KiB, MiB or GiB, from %lld to %lld bytes",
                 (long long)k->min, (long long)k->max);
        break;
    case CONF_CHOICE: {
        size_t off = (size_t)snprintf(buf, len, "one of");
        for (int i = 0; k->choices[i] && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s %s", i ? "," : "", k->choices[i]);
        break;
    }
    case CONF_ADDRESS: snprintf(buf, len, "host:port (or [ipv6]:port), port 0 to 65535"); break;
    case CONF_CONNINFO:
        snprintf(buf, len, "a libpq connection string (host=... dbname=...) or postgresql:// URI");
        break;
    case CONF_STRING: snprintf(buf, len, "any text"); break;
    case CONF_DURATIONS:
        snprintf(buf, len, "durations separated by commas, such as 5s,5m,30m (at most %d)",
                 CONF_MAX_DURATIONS);
        break;
    }
}

/* 1 if value is acceptable for k; numbers are parsed into *number. */
static int value_ok(const struct conf_key *k, const char *value, int64_t *number)
{
    char *end;
    char host[256];
    int port, ok = 0;
    switch (k->type) {
    case CONF_INT:
        errno = 0;
        *number = strtoll(value, &end, 10);
        return !errno && end != value && !*end && *number >= k->min && *number <= k->max;
    case CONF_DURATION:
        return conf_parse_duration(value, number) == 0 && *number >= k->min && *number <= k->max;
    case CONF_SIZE:
        return conf_parse_size(value, number) == 0 && *number >= k->min && *number <= k->max;
    case CONF_CHOICE:
        for (int i = 0; k->choices[i]; i++)
            ok |= strcmp(k->choices[i], value) == 0;
        return ok;
    case CONF_ADDRESS: return conf_parse_address(value, host, sizeof(host), &port) == 0;
    case CONF_STRING:
    case CONF_CONNINFO: return 1; /* a connection string is checked by libpq, below */
    case CONF_DURATIONS: {
        int64_t list[CONF_MAX_DURATIONS];
        return conf_parse_durations(value, list, CONF_MAX_DURATIONS) > 0;
    }
    }
    return 0;
}

static enum sn_err set_key(struct conf *conf, const struct conf_key *k, const char *value,
                           const char *where, char *err, size_t errlen)
{
    char allowed[256];
    int64_t number = 0;
    describe_allowed(k, allowed, sizeof(allowed));
    if (!value_ok(k, value, &number)) {
        sn_errf(err, errlen, "%s: bad value '%s' for %s.%s: must be %s", where, value, k->section,
                k->key, allowed);
        return SN_ERR_CONF;
    }
    if (k->type == CONF_CONNINFO && value[0]) {
        char *pqerr = NULL;
        PQconninfoOption *opts = PQconninfoParse(value, &pqerr);
        if (!opts) {
            /* libpq's message ends with a newline */
            size_t n = pqerr ? strcspn(pqerr, "\n") : 0;
            sn_errf(err, errlen, "%s: bad value for %s.%s: %.*s; must be %s", where, k->section,
                    k->key, (int)n, pqerr ? pqerr : "", allowed);
            PQfreemem(pqerr);
            return SN_ERR_CONF;
        }
        PQconninfoFree(opts);
    }
    if (!is_string_type(k->type)) {
        *int_field(conf, k) = number;
        return SN_OK;
    }
    char **field = string_field(conf, k);
    free(*field);
    *field = xstrdup(value);
    return SN_OK;
}

static const struct conf_key *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys); i++)
        if (strcmp(conf_keys[i].section, section) == 0 && strcmp(conf_keys[i].key, key) == 0)
            return &conf_keys[i];
    return NULL;
}

static int section_known(const char *section, size_t len)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys); i++)
        if (strlen(conf_keys[i].section) == len && strncmp(conf_keys[i].section, section, len) == 0)
            return 1;
    return 0;
}

/* "known keys: http.listen, ..." limited to one section when section is set. */
static void list_keys(const char *section, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys) && off < len; i++) {
        if (section && strcmp(conf_keys[i].section, section) != 0) continue;
        off += (size_t)snprintf(buf + off, len - off, "%s%s.%s", off ? ", " : "",
                                conf_keys[i].section, conf_keys[i].key);
    }
}

static enum sn_err unknown_key(const char *where, const char *section, const char *key, char *err,
                               size_t errlen)
{
    char known[1024];
    int in_known_section = section_known(section, strlen(section));
    list_keys(in_known_section ? section : NULL, known, sizeof(known));
    sn_errf(err, errlen, "%s: unknown key '%s.%s'; %s keys are: %s", where, section, key,
            in_known_section ? "its section's" : "known", known);
    return SN_ERR_CONF;
}

void conf_init(struct conf *conf)
{
    char err[256];
    memset(conf, 0, sizeof(*conf));
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys); i++) {
        enum sn_err rc =
            set_key(conf, &conf_keys[i], conf_keys[i].default_value, "default", err, sizeof(err));
        if (rc != SN_OK) {
            /* the table itself is wrong: a programming error */
            fprintf(stderr, "%s\n", err);
            abort();
        }
    }
}

void conf_free(struct conf *conf)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys); i++) {
        if (!is_string_type(conf_keys[i].type)) continue;
        char **field = string_field(conf, &conf_keys[i]);
        free(*field);
        *field = NULL;
    }
}

enum sn_err conf_set(struct conf *conf, const char *name, const char *value, char *err,
                     size_t errlen)
{
    char section[64];
    const char *dot = strchr(name, '.');
    if (!dot || (size_t)(dot - name) >= sizeof(section)) {
        sn_errf(err, errlen, "'%s' is not a key; keys are written section.key", name);
        return SN_ERR_CONF;
    }
    memcpy(section, name, (size_t)(dot - name));
    section[dot - name] = '\0';
    const struct conf_key *k = find_key(section, dot + 1);
    if (!k) return unknown_key("option", section, dot + 1, err, errlen);
    return set_key(conf, k, value, "option", err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* A value is bare text up to a comment, or "double quoted" to keep # and spaces. */
static int parse_value(char *raw, char **value)
{
    raw = trim(raw);
    if (raw[0] == '"') {
        char *close = strchr(raw + 1, '"'); /* no escapes: the next quote closes */
        if (!close) return -1;
        char *rest = trim(close + 1);
        if (*rest && *rest != '#' && *rest != ';') return -1;
        *close = '\0';
        *value = raw + 1;
        return 0;
    }
    char *hash = strpbrk(raw, "#;");
    if (hash) *hash = '\0';
    *value = trim(raw);
    return 0;
}

enum sn_err conf_load_file(struct conf *conf, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sn_errf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        return SN_ERR_CONF;
    }
    char line[4096];
    char section[64] = "";
    int lineno = 0;
    enum sn_err rc = SN_OK;
    while (rc == SN_OK && fgets(line, sizeof(line), f)) {
        char where[512];
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            sn_errf(err, errlen, "%s: line longer than %zu bytes", where, sizeof(line) - 2);
            rc = SN_ERR_CONF;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            char *name = close ? (*close = '\0', trim(s + 1)) : NULL;
            char *rest = close ? trim(close + 1) : NULL;
            int rest_ok = rest && (!*rest || *rest == '#' || *rest == ';');
            if (!name || !*name || !rest_ok || strlen(name) >= sizeof(section)) {
                sn_errf(err, errlen, "%s: malformed section header; write [section]", where);
                rc = SN_ERR_CONF;
                break;
            }
            if (!section_known(name, strlen(name))) {
                char known[1024];
                list_keys(NULL, known, sizeof(known));
                sn_errf(err, errlen, "%s: unknown section [%s]; known keys are: %s", where, name,
                        known);
                rc = SN_ERR_CONF;
                break;
            }
            snprintf(section, sizeof(section), "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            sn_errf(err, errlen, "%s: expected key = value, got '%s'", where, s);
            rc = SN_ERR_CONF;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value;
        if (!section[0]) {
            sn_errf(err, errlen, "%s: key '%s' comes before any [section]", where, key);
            rc = SN_ERR_CONF;
            break;
        }
        if (parse_value(eq + 1, &value) != 0) {
            sn_errf(err, errlen, "%s: unterminated quoted value for %s.%s", where, section, key);
            rc = SN_ERR_CONF;
            break;
        }
        const struct conf_key *k = find_key(section, key);
        rc = k ? set_key(conf, k, value, where, err, errlen)
               : unknown_key(where, section, key, err, errlen);
    }
    fclose(f);
    return rc;
}

enum sn_err conf_load_env(struct conf *conf, char *const *envp, char *err, size_t errlen)
{
    for (; *envp; envp++) {
        const char *var = *envp;
        if (strncmp(var, "SN_", 3) != 0) continue;
        const char *eq = strchr(var, '=');
        if (!eq) continue;
        const char *name = var + 3;
        size_t namelen = (size_t)(eq - name);
        /* find the section this variable names: SN_<SECTION>_<KEY> */
        const struct conf_key *match = NULL;
        const char *matched_section = NULL;
        for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys) && !match; i++) {
            const struct conf_key *k = &conf_keys[i];
            size_t slen = strlen(k->section);
            if (namelen <= slen + 1 || strncasecmp(name, k->section, slen) != 0 ||
                name[slen] != '_')
                continue;
            matched_section = k->section;
            const char *key = name + slen + 1;
            size_t keylen = namelen - slen - 1;
            if (strlen(k->key) == keylen && strncasecmp(key, k->key, keylen) == 0) match = k;
        }
        if (!matched_section) continue; /* not ours, e.g. SN_URL for snctl */
        char where[256];
        snprintf(where, sizeof(where), "environment %.*s", (int)namelen + 3, var);
        if (!match) {
            char key[128];
            size_t slen = strlen(matched_section);
            size_t keylen = namelen - slen - 1;
            if (keylen >= sizeof(key)) keylen = sizeof(key) - 1;
            for (size_t i = 0; i < keylen; i++)
                key[i] = (char)tolower((unsigned char)name[slen + 1 + i]);
            key[keylen] = '\0';
            return unknown_key(where, matched_section, key, err, errlen);
        }
        enum sn_err rc = set_key(conf, match, eq + 1, where, err, errlen);
        if (rc != SN_OK) return rc;
    }
    return SN_OK;
}

void conf_print_keys(FILE *out)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(conf_keys); i++) {
        const struct conf_key *k = &conf_keys[i];
        char env[128], allowed[256];
        int n = snprintf(env, sizeof(env), "SN_%s_%s", k->section, k->key);
        for (int j = 0; j < n; j++)
            env[j] = (char)toupper((unsigned char)env[j]);
        describe_allowed(k, allowed, sizeof(allowed));
        fprintf(out, "  %s.%s (%s, default \"%s\")\n      %s; %s\n", k->section, k->key, env,
                k->default_value, k->help, allowed);
    }
}
