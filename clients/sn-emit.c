/* sn-emit: the case-system side. Sends review.completed events (JSON Lines) to
 * the broker over HTTP, retrying what may be retried, or to Kafka. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sn.h"
#include "sn_client.h"

#define MAX_ATTEMPTS 8

struct options {
    const char *url;
    char *token;
    const char *kafka;
    const char *topic;
    int binary;
    int batch;
    int quiet;
};

static int failures;
static int sent;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sn-emit --url URL (--token-file FILE | --token TOKEN) [options] [FILE ...]\n"
            "       sn-emit --kafka BOOTSTRAP [--topic TOPIC] [options] [FILE ...]\n"
            "\n"
            "Sends review.completed CloudEvents, one JSON object per line, from the files (or\n"
            "standard input when there is none or FILE is -) to sn-broker, and prints the\n"
            "broker's reply for each event: STATUS SOURCE ID OUTCOME-OR-PROBLEM.\n"
            "\n"
            "Over HTTP a 503, a 429 or a connection error is retried with backoff (up to %d\n"
            "attempts, honouring Retry-After): safe, since the broker de-duplicates by\n"
            "(source, id).\n"
            "\n"
            "Options:\n"
            "  --url URL          broker base URL (env SN_URL), e.g. http://127.0.0.1:8080\n"
            "  --token TOKEN      emitter token (env SN_TOKEN)\n"
            "  --token-file FILE  read the token from FILE\n" CLIENT_TLS_HELP
            "  --binary           binary content mode (ce-* headers, data as the body)\n"
            "  --batch N          send N events per request (application/cloudevents-batch+json)\n"
            "  --kafka BOOTSTRAP  produce to Kafka instead of HTTP\n"
            "  --topic TOPIC      Kafka topic (default reviews.completed)\n"
            "  --quiet            print only failures\n"
            "  -h, --help, -V, --version\n"
            "\n"
            "Exit status: 0 when every event was accepted or was a duplicate, 1 when any was\n"
            "refused or could not be sent, 2 on bad usage.\n"
            "\n"
            "Example:\n"
            "  sn-simulate --seed 7 --reviews 50 --jurisdictions 5 | \\\n"
            "    sn-emit --url http://127.0.0.1:8080 --token-file tn.token\n",
            MAX_ATTEMPTS);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One line per event of a reply body (single or batch result). */
static void print_result(const struct options *o, long status, const json_t *doc,
                         const json_t *event)
{
    const char *source = json_string_value(json_object_get(event, "source"));
    const char *id = json_string_value(json_object_get(event, "id"));
    const char *outcome = json_string_value(json_object_get(doc, "outcome"));
    int ok = status == 200 || status == 202;
    if (!ok) failures++;
    if (ok && o->quiet) return;
    FILE *out = ok ? stdout : stderr;
    fprintf(out, "%ld %s %s ", status, source ? source : "-", id ? id : "-");
    if (outcome) {
        fprintf(out, "%s\n", outcome);
        return;
    }
    const char *title = json_string_value(json_object_get(doc, "title"));
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    fprintf(out, "%s%s%s\n", title ? title : "error", detail ? ": " : "", detail ? detail : "");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "errors"), i, e)
    {
        fprintf(out, "    %s: %s\n", json_string_value(json_object_get(e, "pointer")),
                json_string_value(json_object_get(e, "message")));
    }
}

/* POSTs body; retries 503, 429 and connection errors. Returns 0 with r filled. */
static int post(CURL *curl, const struct options *o, struct curl_slist *headers, const char *body,
                size_t len, struct client_reply *r)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s/v1/events", o->url);
    long delay = 200;
    for (int attempt = 1;; attempt++) {
        free(r->body);
        memset(r, 0, sizeof(*r));
        r->body = xcalloc(1, 1);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, client_on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, client_on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
        CURLcode rc = curl_easy_perform(curl);
        if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
        int retry = rc != CURLE_OK || r->status == 503 || r->status == 429;
        if (!retry) return 0;
        if (attempt == MAX_ATTEMPTS) {
            if (rc != CURLE_OK) fprintf(stderr, "sn-emit: %s: %s\n", url, curl_easy_strerror(rc));
            return rc == CURLE_OK ? 0 : -1;
        }
        long wait = delay;
        if (r->retry_after[0]) wait = atol(r->retry_after) * 1000;
        if (wait <= 0 || wait > 60000) wait = delay;
        fprintf(stderr, "sn-emit: %s, retrying in %ld ms (attempt %d of %d)\n",
                rc != CURLE_OK     ? curl_easy_strerror(rc)
                : r->status == 503 ? "503"
                                   : "429",
                wait, attempt + 1, MAX_ATTEMPTS);
        sleep_ms(wait);
        if (delay < 10000) delay *= 2;
    }
}

/* Sends events (an array of 1..batch envelopes) over HTTP. */
static void send_http(CURL *curl, const struct options *o, json_t *events)
{
    struct curl_slist *headers = NULL;
    char auth[1024];
    if (o->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
        headers = curl_slist_append(headers, auth);
    }
    char *body;
    json_t *first = json_array_get(events, 0);
    if (o->batch > 1) {
        headers = curl_slist_append(headers, "Content-Type: application/cloudevents-batch+json");
        body = json_dumps(events, JSON_COMPACT);
    } else if (o->binary) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        const char *key;
        json_t *value;
        json_object_foreach(first, key, value)
        {
            if (strcmp(key, "data") == 0 || strcmp(key, "datacontenttype") == 0) continue;
            char *text = json_is_string(value) ? xstrdup(json_string_value(value))
                                               : json_dumps(value, JSON_ENCODE_ANY);
            char *escaped = curl_easy_escape(curl, text ? text : "", 0);
            char line[2048];
            snprintf(line, sizeof(line), "ce-%s: %s", key, escaped ? escaped : "");
            headers = curl_slist_append(headers, line);
            curl_free(escaped);
            free(text);
        }
        body = json_dumps(json_object_get(first, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
    } else {
        headers = curl_slist_append(headers, "Content-Type: application/cloudevents+json");
        body = json_dumps(first, JSON_COMPACT);
    }
    struct client_reply r = {0};
    if (!body || post(curl, o, headers, body, strlen(body), &r) != 0) {
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev) print_result(o, 0, NULL, ev);
    } else {
        json_error_t jerr;
        json_t *doc = json_loads(r.body, 0, &jerr);
        json_t *results = json_object_get(doc, "results");
        if (r.status == 207 && json_is_array(results)) {
            size_t i;
            json_t *item;
            json_array_foreach(results, i, item)
            {
                print_result(o, (long)json_integer_value(json_object_get(item, "status")), item,
                             json_array_get(events, i));
            }
        } else {
            size_t i;
            json_t *ev;
            json_array_foreach(events, i, ev) print_result(o, r.status, doc, ev);
        }
        json_decref(doc);
    }
    sent += (int)json_array_size(events);
    free(r.body);
    free(body);
    curl_slist_free_all(headers);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        failures++;
        fprintf(stderr, "sn-emit: not delivered to Kafka: %s\n", rd_kafka_err2str(m->err));
    }
}

static int send_kafka(rd_kafka_t *rk, const struct options *o, json_t *event)
{
    json_t *data = json_object_get(event, "data");
    /* one review's versions go to one partition, in order */
    char key[256];
    snprintf(key, sizeof(key), "%s/%s", json_string_value(json_object_get(data, "jurisdiction")),
             json_string_value(json_object_get(data, "review_id")));
    rd_kafka_headers_t *headers = rd_kafka_headers_new(8);
    char *value;
    if (o->binary) {
        const char *name;
        json_t *v;
        json_object_foreach(event, name, v)
        {
            if (strcmp(name, "data") == 0 || strcmp(name, "datacontenttype") == 0) continue;
            char hname[64];
            snprintf(hname, sizeof(hname), "ce_%s", name);
            char *text =
                json_is_string(v) ? xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
            rd_kafka_header_add(headers, hname, -1, text, -1);
            free(text);
        }
        rd_kafka_header_add(headers, "content-type", -1, "application/json", -1);
        value = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    } else {
        rd_kafka_header_add(headers, "content-type", -1, "application/cloudevents+json", -1);
        value = json_dumps(event, JSON_COMPACT);
    }
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(value, strlen(value)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk, 100);
    }
    free(value);
    if (err) {
        rd_kafka_headers_destroy(headers);
        failures++;
        fprintf(stderr, "sn-emit: cannot produce: %s\n", rd_kafka_err2str(err));
        return -1;
    }
    sent++;
    rd_kafka_poll(rk, 0);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"token", required_argument, NULL, 't'},
                                         {"token-file", required_argument, NULL, 'f'},
                                         {"kafka", required_argument, NULL, 'k'},
                                         {"topic", required_argument, NULL, 'T'},
                                         {"binary", no_argument, NULL, 'b'},
                                         {"batch", required_argument, NULL, 'B'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         CLIENT_TLS_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    struct options o = {getenv("SN_URL"), NULL, NULL, "reviews.completed", 0, 1, 0};
    const char *token = getenv("SN_TOKEN"), *token_file = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'u': o.url = optarg; break;
        case 't': token = optarg; break;
        case 'f': token_file = optarg; break;
        case 'k': o.kafka = optarg; break;
        case 'T': o.topic = optarg; break;
        case 'b': o.binary = 1; break;
        case 'B': o.batch = atoi(optarg); break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("sn-emit %s (%s)\n", SN_VERSION, SN_COMMIT); return 0;
        default:
            if (client_tls_option(opt, optarg)) break;
            usage(stderr);
            return 2;
        }
    }
    if (o.batch < 1 || o.batch > 1000 || (o.batch > 1 && (o.binary || o.kafka))) {
        fprintf(stderr, "sn-emit: --batch takes 1 to 1000, over HTTP in structured mode\n");
        return 2;
    }
    if (!o.kafka && (!o.url || !o.url[0])) {
        fprintf(stderr, "sn-emit: give --url URL (or SN_URL), or --kafka BOOTSTRAP\n");
        return 2;
    }
    if (!o.kafka) {
        o.token = token_file ? client_read_token_file("sn-emit", token_file)
                  : token    ? xstrdup(token)
                             : NULL;
        /* a client certificate mapped by the broker (mTLS) may stand for the token */
        const char *cert = getenv("SN_CLIENT_CERT");
        if (!o.token && !(cert && cert[0])) {
            fprintf(stderr, "sn-emit: give --token-file FILE or --token TOKEN (or SN_TOKEN), or "
                            "--cert FILE for a broker that maps client certificates\n");
            return 2;
        }
    }

    CURL *curl = NULL;
    rd_kafka_t *rk = NULL;
    char err[512];
    if (o.kafka) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", o.kafka, err, sizeof(err)) ||
            rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
            rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err))) {
            fprintf(stderr, "sn-emit: %s\n", err);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
            fprintf(stderr, "sn-emit: %s\n", err);
            rd_kafka_conf_destroy(conf);
            return 1;
        }
    } else {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl = client_easy_new("sn-emit/" SN_VERSION);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    }

    int nfiles = argc - optind;
    json_t *pending = json_array();
    for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
        const char *path = nfiles ? argv[optind + f] : "-";
        FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
        if (!in) {
            perror(path);
            failures++;
            continue;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long lineno = 0;
        while ((n = getline(&line, &cap, in)) > 0) {
            lineno++;
            if (strspn(line, " \t\r\n") == (size_t)n) continue;
            json_error_t jerr;
            json_t *ev = json_loadb(line, (size_t)n, 0, &jerr);
            if (!json_is_object(ev)) {
                fprintf(stderr, "sn-emit: %s:%ld: not a JSON object: %s\n", path, lineno,
                        ev ? "(another JSON value)" : jerr.text);
                json_decref(ev);
                failures++;
                continue;
            }
            if (rk) {
                send_kafka(rk, &o, ev);
                json_decref(ev);
                continue;
            }
            json_array_append_new(pending, ev);
            if ((int)json_array_size(pending) >= o.batch) {
                send_http(curl, &o, pending);
                json_array_clear(pending);
            }
        }
        free(line);
        if (in != stdin) fclose(in);
    }
    if (curl && json_array_size(pending) > 0) send_http(curl, &o, pending);
    json_decref(pending);
    if (rk) {
        rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 30000);
        if (ferr) {
            fprintf(stderr, "sn-emit: %d message(s) not delivered: %s\n", rd_kafka_outq_len(rk),
                    rd_kafka_err2str(ferr));
            failures++;
        }
        if (!o.quiet) fprintf(stderr, "sn-emit: %d event(s) produced to %s\n", sent, o.topic);
        rd_kafka_destroy(rk);
    }
    if (curl) {
        curl_easy_cleanup(curl);
        curl_global_cleanup();
    }
    free(o.token);
    return failures ? 1 : 0;
}
