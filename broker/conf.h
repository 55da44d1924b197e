/* Configuration: one table of keys (section, key, type, default, help) drives
 * the file parser, the environment overrides (SN_<SECTION>_<KEY>), validation
 * and the --help listing, so a key is defined once. */
#ifndef SN_CONF_H
#define SN_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "sn.h"

struct conf {
    char *http_listen;
    int64_t http_max_body_size;
    int64_t http_max_header_size;
    int64_t http_max_connections;
    int64_t http_read_timeout_ms;
    int64_t http_rate_limit;
    int64_t http_rate_burst;
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_client_ca_file;
    char *tls_client_auth;
    char *tls_client_map;
    char *schemas_dir;
    char *database_url;
    int64_t database_reconnect_max_ms;
    int64_t database_query_timeout_ms;
    char *kafka_bootstrap_servers;
    char *kafka_reviews_topic;
    char *kafka_dlq_topic;
    char *kafka_group_id;
    int64_t embedded_kafka_brokers;
    char *embedded_pg_bindir;
    char *embedded_pg_user;
    char *log_level;
    char *rules_path;
    int64_t rules_tick_ms;
    int64_t privacy_min_cell;
    char *privacy_unnamed_jurisdictions;
    char *notices_cap_sender;
    char *kafka_notices_topic;
    char *webhook_allow_private_targets;
    int64_t webhook_timeout_ms;
    char *webhook_ca_file;
    int64_t webhook_max_per_endpoint;
    int64_t webhook_secret_overlap_ms;
    char *smtp_url;
    char *smtp_from;
    char *smtp_username;
    char *smtp_password_file;
    char *smtp_starttls;
    char *smtp_ca_file;
    int64_t smtp_timeout_ms;
    char *delivery_retry_schedule;
    int64_t delivery_breaker_threshold;
    int64_t delivery_breaker_cooldown_ms;
    int64_t shutdown_timeout_ms;
    char *http_public_url;
    int64_t digest_tick_ms;
    int64_t digest_clock_offset_ms;
    int64_t dashboard_session_lifetime_ms;
    char *kafka_security_protocol;
    char *kafka_sasl_mechanism;
    char *kafka_sasl_username;
    char *kafka_sasl_password_file;
    char *kafka_ssl_ca_file;
    char *kafka_ssl_cert_file;
    char *kafka_ssl_key_file;
    int64_t retention_events_ms;
    int64_t retention_facts_ms;
    int64_t retention_delivery_attempts_ms;
    int64_t retention_interval_ms;
    int64_t cluster_heartbeat_ms;
    char *auth_admin_token_file;
};

/* Fills conf with the defaults. */
void conf_init(struct conf *conf);
void conf_free(struct conf *conf);

/* Reads an INI-style file ([section] then key = value; # comments). On error
 * returns SN_ERR_CONF and writes a message naming the file, line and key to
 * err. */
enum sn_err conf_load_file(struct conf *conf, const char *path, char *err, size_t errlen);
/* Applies SN_<SECTION>_<KEY> variables from envp (NULL-terminated). A variable
 * that names a known section but an unknown key is an error, so a typo does
 * not pass silently. */
enum sn_err conf_load_env(struct conf *conf, char *const *envp, char *err, size_t errlen);
/* Sets one key ("section.key") from a string, validating it. */
enum sn_err conf_set(struct conf *conf, const char *name, const char *value, char *err,
                     size_t errlen);
/* Writes every key with its default and help text (for --help). */
void conf_print_keys(FILE *out);

/* "250ms", "5s", "10m", "12h", "90d", "26w" -> milliseconds. Returns 0, or -1
 * when the text is not a duration. */
int conf_parse_duration(const char *text, int64_t *ms);
/* "5s,5m,30m" -> up to max milliseconds in list. Returns how many (at least
 * one), or -1 when the text is not such a list. */
#define CONF_MAX_DURATIONS 32
int conf_parse_durations(const char *text, int64_t *list, int max);
/* "1048576", "512KiB", "1MiB", "1GiB" -> bytes. Returns 0 or -1. */
int conf_parse_size(const char *text, int64_t *bytes);
/* "host:port" or "[v6]:port" -> parts. host must hold 256 bytes. Returns 0 or -1. */
int conf_parse_address(const char *text, char *host, size_t hostlen, int *port);

#endif
