#include "kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

struct kafka_mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *cluster;
    char *bootstrap;
};

struct kafka_wakeup {
    rd_kafka_queue_t *queue;
    int pipe[2]; /* librdkafka writes to pipe[1] when the queue becomes non-empty */
    struct event *ev;
    void (*drain)(void *arg);
    void *arg;
};

struct kafka {
    struct event_base *base;
    struct kafka_hooks hooks;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    struct kafka_wakeup *wakeup;
    int up;
    int brokers_up;
    char *bootstrap;
    char detail[512];
    kafka_delivery_fn on_delivery;
    void *on_delivery_arg;
};

/* syslog levels (librdkafka's) -> ours */
static enum log_level map_level(int level)
{
    return level <= 3   ? SN_LOG_ERROR
           : level <= 4 ? SN_LOG_WARN
           : level <= 6 ? SN_LOG_INFO
                        : SN_LOG_DEBUG;
}

void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_at(map_level(level),
           json_pack("{s:s,s:s}", "component", rd_kafka_name(rk), "facility", fac), "%s", buf);
}

/* Called on librdkafka's own threads (for the mock cluster's handle); the
 * logger writes a whole line with one write(2), so this is safe. Routine
 * chatter goes to debug. */
static void mock_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum log_level l = map_level(level);
    if (l < SN_LOG_WARN) l = SN_LOG_DEBUG;
    log_at(l, json_pack("{s:s,s:s}", "component", "kafka-mock", "facility", fac), "%s", buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errlen)
{
    if (rd_kafka_conf_set(conf, name, value, err, errlen) != RD_KAFKA_CONF_OK) return -1;
    return 0;
}

int kafka_conf_security(rd_kafka_conf_t *rc, const struct kafka_security *sec, char *err,
                        size_t errlen)
{
    if (!sec || !sec->protocol[0] || strcmp(sec->protocol, "plaintext") == 0) return 0;
    int sasl = strncmp(sec->protocol, "sasl_", 5) == 0;
    int ssl = strcmp(sec->protocol, "ssl") == 0 || strcmp(sec->protocol, "sasl_ssl") == 0;
    const char *settings[][2] = {
        {"security.protocol", sec->protocol},
        {"sasl.mechanism", sasl ? sec->sasl_mechanism : ""},
        {"sasl.username", sasl ? sec->sasl_username : ""},
        {"sasl.password", sasl ? sec->sasl_password : ""},
        {"ssl.ca.location", ssl ? sec->ssl_ca_file : ""},
        {"ssl.certificate.location", ssl ? sec->ssl_cert_file : ""},
        {"ssl.key.location", ssl ? sec->ssl_key_file : ""},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(settings); i++) {
        if (!settings[i][1] || !settings[i][1][0]) continue;
        char why[256];
        if (conf_set(rc, settings[i][0], settings[i][1], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "kafka: %s: %s", settings[i][0], why);
            return -1;
        }
    }
    return 0;
}

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    struct kafka_wakeup *w = arg;
    char buf[64];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    w->drain(w->arg);
}

struct kafka_wakeup *kafka_wakeup_new(struct event_base *base, rd_kafka_queue_t *queue,
                                      void (*drain)(void *arg), void *arg)
{
    struct kafka_wakeup *w = xcalloc(1, sizeof(*w));
    w->queue = queue;
    w->drain = drain;
    w->arg = arg;
    if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(w);
        return NULL;
    }
    rd_kafka_queue_io_event_enable(queue, w->pipe[1], "1", 1);
    w->ev = event_new(base, w->pipe[0], EV_READ | EV_PERSIST, on_wakeup, w);
    if (!w->ev) sn_oom(0);
    event_add(w->ev, NULL);
    /* what was queued before the pipe was attached */
    drain(arg);
    return w;
}

void kafka_wakeup_free(struct kafka_wakeup *w)
{
    if (!w) return;
    rd_kafka_queue_io_event_enable(w->queue, -1, NULL, 0);
    event_free(w->ev);
    close(w->pipe[0]);
    close(w->pipe[1]);
    free(w);
}

enum sn_err kafka_mock_create_topic(struct kafka_mock *m, const char *topic, int partitions)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(m->cluster, topic, partitions, 1);
    return err ? SN_ERR_KAFKA : SN_OK;
}

enum sn_err kafka_mock_start(int brokers, struct kafka_mock **out, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, mock_log_cb);
    if (conf_set(conf, "client.id", "sn-broker-mock-cluster", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return SN_ERR_KAFKA;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return SN_ERR_KAFKA;
    }
    /* the mock cluster's thread (unlike rd_kafka_new's) does not block
     * signals, and a poll() it sees interrupted by SIGTERM kills it and
     * frees its queue under rd_kafka_mock_cluster_destroy(): start it with
     * every signal blocked, as librdkafka's own threads are */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, brokers);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!cluster) {
        snprintf(err, errlen, "rd_kafka_mock_cluster_new failed");
        rd_kafka_destroy(rk);
        return SN_ERR_KAFKA;
    }
    struct kafka_mock *m = xcalloc(1, sizeof(*m));
    m->rk = rk;
    m->cluster = cluster;
    m->bootstrap = xstrdup(rd_kafka_mock_cluster_bootstraps(cluster));
    *out = m;
    return SN_OK;
}

const char *kafka_mock_bootstrap(const struct kafka_mock *m)
{
    return m->bootstrap;
}

void kafka_mock_free(struct kafka_mock *m)
{
    if (!m) return;
    rd_kafka_mock_cluster_destroy(m->cluster);
    rd_kafka_destroy(m->rk);
    free(m->bootstrap);
    free(m);
}

static void set_up(struct kafka *k, int up)
{
    if (up) {
        snprintf(k->detail, sizeof(k->detail), "connected to %d broker%s", k->brokers_up,
                 k->brokers_up == 1 ? "" : "s");
    }
    if (k->up == up) return;
    k->up = up;
    metrics_gauge_set("sn_kafka_up", "", up);
    if (up)
        log_info(json_pack("{s:s}", "bootstrap", k->bootstrap), "kafka connected");
    else
        log_warn(json_pack("{s:s,s:s}", "bootstrap", k->bootstrap, "detail", k->detail),
                 "kafka not reachable");
    if (k->hooks.on_state) k->hooks.on_state(k, up, k->hooks.arg);
}

/* The statistics event lists every broker with its state; "UP" means a live
 * connection. This is how we learn the connection state without blocking. */
static void handle_stats(struct kafka *k, const char *stats)
{
    json_error_t jerr;
    json_t *root = json_loads(stats, 0, &jerr);
    if (!root) return;
    json_t *brokers = json_object_get(root, "brokers");
    const char *name;
    json_t *b;
    int up = 0;
    json_object_foreach(brokers, name, b)
    {
        const char *state = json_string_value(json_object_get(b, "state"));
        if (state && strcmp(state, "UP") == 0) up++;
    }
    json_decref(root);
    k->brokers_up = up;
    if (!up) {
        snprintf(k->detail, sizeof(k->detail), "no connection to any broker of %s", k->bootstrap);
    }
    set_up(k, up > 0);
}

static void handle_event(struct kafka *k, rd_kafka_event_t *ev)
{
    switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_STATS: handle_stats(k, rd_kafka_event_stats(ev)); break;
    case RD_KAFKA_EVENT_ERROR: {
        rd_kafka_resp_err_t code = rd_kafka_event_error(ev);
        int fatal = rd_kafka_event_error_is_fatal(ev);
        snprintf(k->detail, sizeof(k->detail), "%s", rd_kafka_event_error_string(ev));
        log_at(fatal ? SN_LOG_ERROR : SN_LOG_WARN,
               json_pack("{s:s,s:b}", "code", rd_kafka_err2name(code), "fatal", fatal), "kafka: %s",
               rd_kafka_event_error_string(ev));
        if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || fatal) set_up(k, 0);
        break;
    }
    case RD_KAFKA_EVENT_DR: {
        const rd_kafka_message_t *m;
        while ((m = rd_kafka_event_message_next(ev)) != NULL) {
            if (m->_private && k->on_delivery) {
                k->on_delivery(m->_private, m->err ? rd_kafka_err2str(m->err) : NULL,
                               k->on_delivery_arg);
                continue;
            }
            if (m->err)
                log_error(json_pack("{s:s,s:i}", "topic", rd_kafka_topic_name(m->rkt), "partition",
                                    (int)m->partition),
                          "kafka: message not delivered: %s", rd_kafka_err2str(m->err));
        }
        break;
    }
    case RD_KAFKA_EVENT_LOG: {
        const char *fac, *str;
        int level;
        if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
            log_at(map_level(level), json_pack("{s:s,s:s}", "component", "kafka", "facility", fac),
                   "%s", str);
        break;
    }
    default: break;
    }
}

static void drain_main(void *arg)
{
    struct kafka *k = arg;
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(k->mainq, 0)) != NULL) {
        handle_event(k, ev);
        rd_kafka_event_destroy(ev);
    }
}

enum sn_err kafka_new(struct event_base *base, const char *bootstrap,
                      const struct kafka_security *sec, const struct kafka_hooks *hooks,
                      struct kafka **out, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (kafka_conf_security(conf, sec, err, errlen) != 0 ||
        conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) != 0 ||
        conf_set(conf, "client.id", "sn-broker", err, errlen) != 0 ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        conf_set(conf, "acks", "all", err, errlen) != 0 ||
        /* a message not acknowledged by then fails, and the outbox retries
         * it: bounds how long a claimed delivery can stay in flight */
        conf_set(conf, "message.timeout.ms", "30000", err, errlen) != 0 ||
        conf_set(conf, "statistics.interval.ms", "1000", err, errlen) != 0 ||
        conf_set(conf, "log.queue", "true", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return SN_ERR_KAFKA;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb); /* until the log queue is attached */
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_STATS |
                                       RD_KAFKA_EVENT_LOG);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return SN_ERR_KAFKA;
    }
    struct kafka *k = xcalloc(1, sizeof(*k));
    k->base = base;
    k->rk = rk;
    k->bootstrap = xstrdup(bootstrap);
    if (hooks) k->hooks = *hooks;
    snprintf(k->detail, sizeof(k->detail), "connecting to %s", bootstrap);
    metrics_register("sn_kafka_up", METRIC_GAUGE,
                     "1 when the Kafka producer has a connection to a broker, else 0");
    metrics_gauge_set("sn_kafka_up", "", 0);
    k->mainq = rd_kafka_queue_get_main(rk);
    rd_kafka_resp_err_t rerr = rd_kafka_set_log_queue(rk, k->mainq);
    if (rerr) log_warn(NULL, "kafka: cannot route logs to the loop: %s", rd_kafka_err2str(rerr));
    k->wakeup = kafka_wakeup_new(base, k->mainq, drain_main, k);
    if (!k->wakeup) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rd_kafka_queue_destroy(k->mainq);
        rd_kafka_destroy(rk);
        free(k->bootstrap);
        free(k);
        return SN_ERR_IO;
    }
    *out = k;
    return SN_OK;
}

void kafka_on_delivery(struct kafka *k, kafka_delivery_fn fn, void *arg)
{
    k->on_delivery = fn;
    k->on_delivery_arg = arg;
}

enum sn_err kafka_produce(struct kafka *k, const char *topic, const void *key, size_t keylen,
                          const void *value, size_t len, rd_kafka_headers_t *headers, void *opaque)
{
    rd_kafka_resp_err_t err =
        rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err) {
        if (headers) rd_kafka_headers_destroy(headers);
        log_error(json_pack("{s:s}", "topic", topic), "kafka: cannot produce: %s",
                  rd_kafka_err2str(err));
        return SN_ERR_KAFKA;
    }
    return SN_OK;
}

int kafka_is_up(const struct kafka *k)
{
    return k->up;
}

const char *kafka_detail(const struct kafka *k)
{
    return k->detail;
}

void kafka_free(struct kafka *k, int timeout_ms)
{
    if (!k) return;
    rd_kafka_resp_err_t rerr = rd_kafka_flush(k->rk, timeout_ms);
    if (rerr)
        log_warn(json_pack("{s:i}", "outq", rd_kafka_outq_len(k->rk)),
                 "kafka: not everything was flushed: %s", rd_kafka_err2str(rerr));
    kafka_wakeup_free(k->wakeup);
    /* what could not be delivered in time is purged, and its delivery
     * reports still reach their owners (who must not lose track of them);
     * the rest is drained so that rd_kafka_destroy() does not wait on it */
    rerr = rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (rerr) log_warn(NULL, "kafka: cannot purge: %s", rd_kafka_err2str(rerr));
    rd_kafka_poll(k->rk, 0);
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(k->mainq, 0)) != NULL) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) handle_event(k, ev);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(k->mainq);
    rd_kafka_destroy(k->rk);
    free(k->bootstrap);
    free(k);
}
