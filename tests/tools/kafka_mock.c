/* sn-kafka-mock: a Kafka cluster for tests, in one process, from librdkafka's
 * mock cluster. The tests run it beside the broker to exercise the Kafka
 * ingest and sink without a JVM, and to take brokers down and up on cue.
 *
 *   sn-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * Prints {"bootstrap": "host:port,..."} once the cluster listens, then reads one
 * command a line from stdin and answers each with one line, "ok" or
 * "error: ...":
 *
 *   down BROKER_ID|all       disconnect a broker and refuse new connections
 *   up BROKER_ID|all         accept connections again
 *   topic NAME PARTITIONS    create a topic
 *   leader NAME PARTITION BROKER_ID   move a partition's leader (-1: none)
 *   quit                     destroy the cluster and exit 0 (as does EOF)
 *
 * Broker ids are 1..N. Exit status 2 is a usage error, 1 a failure to start. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "sn.h"

#define KAFKA_MOCK_LINE_MAX    1024
#define KAFKA_MOCK_MAX_BROKERS 64

struct topic_spec {
    char *name;
    int partition_count;
};

/* A JSON string's contents, escaped, on f. */
static void json_escape_to(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fputs("{\"level\":\"error\",\"msg\":\"", stderr);
    json_escape_to(stderr, msg);
    fputs("\"}\n", stderr);
}

/* librdkafka logs from its own threads; only errors are worth a test's stderr
 * (a mock cluster's notices about connections coming and going are noise). */
static void kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf)
{
    (void)rk;
    if (level > LOG_ERR) return;
    log_error("librdkafka %s: %s", facility, buf);
}

static void usage(FILE *f)
{
    fputs("usage: sn-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...\n"
          "commands on stdin: down ID|all, up ID|all, topic NAME PARTITIONS,\n"
          "                   leader NAME PARTITION ID, quit\n",
          f);
}

/* A whole decimal integer in [min, max], or false. */
static bool parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long value;

    if (!s || !*s) return false;
    errno = 0;
    value = strtol(s, &end, 10);
    if (errno || *end || value < min || value > max) return false;
    *out = value;
    return true;
}

/* "all" is -1, which librdkafka takes as every broker. */
static bool parse_broker_id(const char *s, int32_t *out)
{
    long id;

    if (s && strcmp(s, "all") == 0) {
        *out = -1;
        return true;
    }
    if (!parse_int(s, 1, INT32_MAX, &id)) return false;
    *out = (int32_t)id;
    return true;
}

static rd_kafka_resp_err_t create_topic(rd_kafka_mock_cluster_t *mcluster, int broker_count,
                                        const char *name, int partition_count)
{
    int replication_factor = broker_count < 3 ? broker_count : 3;
    return rd_kafka_mock_topic_create(mcluster, name, partition_count, replication_factor);
}

static void reply_ok(void)
{
    puts("ok");
}

static void reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply_error(const char *fmt, ...)
{
    va_list ap;
    fputs("error: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static void reply_kafka(rd_kafka_resp_err_t err)
{
    if (err)
        reply_error("%s", rd_kafka_err2str(err));
    else
        reply_ok();
}

/* Runs one command line and answers it on stdout. Returns false on quit. */
static bool run_command(rd_kafka_mock_cluster_t *mcluster, int broker_count, char *line)
{
    char *save = NULL;
    const char *words[5] = {0};
    size_t count = 0;
    char *word;

    for (word = strtok_r(line, " \t\r\n", &save); word; word = strtok_r(NULL, " \t\r\n", &save)) {
        if (count == SN_ARRAY_LEN(words)) {
            reply_error("too many arguments");
            return true;
        }
        words[count++] = word;
    }
    if (count == 0) {
        reply_error("empty command");
        return true;
    }

    const char *cmd = words[0];
    if (strcmp(cmd, "quit") == 0 && count == 1) {
        reply_ok();
        return false;
    }
    if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && count == 2) {
        int32_t id;
        if (!parse_broker_id(words[1], &id) || id > broker_count) {
            reply_error("broker id must be 1..%d or all", broker_count);
            return true;
        }
        if (cmd[0] == 'd')
            reply_kafka(rd_kafka_mock_broker_set_down(mcluster, id));
        else
            reply_kafka(rd_kafka_mock_broker_set_up(mcluster, id));
        return true;
    }
    if (strcmp(cmd, "topic") == 0 && count == 3) {
        long partition_count;
        if (!parse_int(words[2], 1, 100000, &partition_count)) {
            reply_error("partition count must be 1..100000");
            return true;
        }
        reply_kafka(create_topic(mcluster, broker_count, words[1], (int)partition_count));
        return true;
    }
    if (strcmp(cmd, "leader") == 0 && count == 4) {
        long partition, id;
        if (!parse_int(words[2], 0, INT32_MAX, &partition)) {
            reply_error("partition must be a non-negative integer");
            return true;
        }
        if (!parse_int(words[3], -1, broker_count, &id) || id == 0) {
            reply_error("leader must be 1..%d, or -1 for none", broker_count);
            return true;
        }
        reply_kafka(rd_kafka_mock_partition_set_leader(mcluster, words[1], (int32_t)partition,
                                                       (int32_t)id));
        return true;
    }
    reply_error("unknown command or wrong argument count: %s", cmd);
    return true;
}

/* Reads commands until quit or EOF. A line longer than the buffer is refused
 * whole rather than run in pieces. */
static void command_loop(rd_kafka_mock_cluster_t *mcluster, int broker_count)
{
    char line[KAFKA_MOCK_LINE_MAX];
    bool overlong = false;

    while (fgets(line, sizeof(line), stdin)) {
        size_t len = strlen(line);
        bool complete = len > 0 && line[len - 1] == '\n';

        if (!complete && !feof(stdin)) {
            overlong = true;
            continue;
        }
        if (overlong) {
            overlong = false;
            reply_error("line longer than %d bytes", KAFKA_MOCK_LINE_MAX - 1);
        } else if (!run_command(mcluster, broker_count, line)) {
            fflush(stdout);
            return;
        }
        fflush(stdout);
    }
}

/* Parses the arguments into broker_count and topics (the caller frees each
 * name and the array). Returns false after printing a usage error. */
static bool parse_args(int argc, char **argv, int *broker_count, struct topic_spec **topics,
                       size_t *topic_count)
{
    *broker_count = 1;
    *topics = xcalloc((size_t)argc, sizeof(**topics));
    *topic_count = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "sn-kafka-mock: unknown argument or missing value: %s\n", arg);
            return false;
        }
        const char *value = argv[++i];
        if (strcmp(arg, "--brokers") == 0) {
            long n;
            if (!parse_int(value, 1, KAFKA_MOCK_MAX_BROKERS, &n)) {
                fprintf(stderr, "sn-kafka-mock: --brokers must be 1..%d\n", KAFKA_MOCK_MAX_BROKERS);
                return false;
            }
            *broker_count = (int)n;
        } else if (strcmp(arg, "--topic") == 0) {
            const char *colon = strrchr(value, ':');
            long partition_count;
            if (!colon || colon == value || !parse_int(colon + 1, 1, 100000, &partition_count)) {
                fprintf(stderr, "sn-kafka-mock: --topic wants NAME:PARTITIONS, got %s\n", value);
                return false;
            }
            (*topics)[*topic_count].name = xstrndup(value, (size_t)(colon - value));
            (*topics)[*topic_count].partition_count = (int)partition_count;
            (*topic_count)++;
        } else {
            fprintf(stderr, "sn-kafka-mock: unknown argument: %s\n", arg);
            return false;
        }
    }
    return true;
}

static void free_topics(struct topic_spec *topics, size_t topic_count)
{
    for (size_t i = 0; i < topic_count; i++)
        free(topics[i].name);
    free(topics);
}

/* The mock cluster needs a client handle to live in; it is never used to
 * produce. */
static rd_kafka_t *new_host_handle(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set_log_cb(conf, kafka_log);
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        log_error("log_level: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        log_error("rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk; /* rk owns conf now */
}

int main(int argc, char **argv)
{
    int broker_count;
    struct topic_spec *topics;
    size_t topic_count;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mcluster = NULL;
    const char *bootstrap;
    int status = 1;

    if (!parse_args(argc, argv, &broker_count, &topics, &topic_count)) {
        usage(stderr);
        free_topics(topics, topic_count);
        return 2;
    }

    rk = new_host_handle();
    if (!rk) goto out_topics;

    mcluster = rd_kafka_mock_cluster_new(rk, broker_count);
    if (!mcluster) {
        log_error("rd_kafka_mock_cluster_new failed for %d brokers", broker_count);
        goto out_rk;
    }

    for (size_t i = 0; i < topic_count; i++) {
        rd_kafka_resp_err_t err =
            create_topic(mcluster, broker_count, topics[i].name, topics[i].partition_count);
        if (err) {
            log_error("creating topic %s: %s", topics[i].name, rd_kafka_err2str(err));
            goto out_cluster;
        }
    }

    bootstrap = rd_kafka_mock_cluster_bootstraps(mcluster);
    if (!bootstrap) {
        log_error("the mock cluster has no bootstrap servers");
        goto out_cluster;
    }
    fputs("{\"bootstrap\": \"", stdout);
    json_escape_to(stdout, bootstrap);
    fputs("\"}\n", stdout);
    fflush(stdout);

    command_loop(mcluster, broker_count);
    status = 0;

out_cluster:
    rd_kafka_mock_cluster_destroy(mcluster);
out_rk:
    rd_kafka_destroy(rk);
out_topics:
    free_topics(topics, topic_count);
    return status;
}
