/* The process: what main.c starts and stops, and what route handlers reach
 * through http_request.app. */
#ifndef SN_BROKER_H
#define SN_BROKER_H

#include <event2/event.h>

#include "conf.h"
#include "http.h"

struct broker {
    struct conf conf;
    const char *embedded_dir; /* NULL unless --embedded */
    struct event_base *base;
    struct http_server *http;
    struct store *store;
    struct kafka *kafka;
    struct kafka_mock *kafka_mock;
    struct embedded *embedded;
    char http_address[300];
    char kafka_bootstrap[1024];
    int store_started;
    int admin_token_ready;
    int announced;
    int shutting_down;
    int exit_code;
    double shutdown_started_at;
    struct event *signal_evs[3];
    struct event *drain_ev;
    struct event *deadline_ev;
};

/* The route table of the HTTP API. */
extern const struct http_route broker_routes[];
extern const size_t broker_routes_count;

/* 1 when every dependency is ready; fills checks (if not NULL) with one
 * object per dependency: {"ready": bool, "detail": text}. */
int broker_ready(const struct broker *b, json_t *checks);

#endif
