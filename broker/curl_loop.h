/* libcurl's multi-socket interface driven by the libevent loop: transfers
 * (webhook POSTs, SMTP sessions) run side by side on the one thread, none
 * blocks another, and each reports back once through its callback. */
#ifndef SN_CURL_LOOP_H
#define SN_CURL_LOOP_H

#include <curl/curl.h>
#include <event2/event.h>
#include <stddef.h>

#include "sn.h"

struct curl_loop;

/* Called once per transfer, from the loop, when it has finished (result
 * CURLE_OK or the error; the HTTP status is in CURLINFO_RESPONSE_CODE) or was
 * aborted by curl_loop_free() (CURLE_ABORTED_BY_CALLBACK). The callee owns
 * easy from then on and must curl_easy_cleanup() it. */
typedef void (*curl_loop_done_fn)(CURL *easy, CURLcode result, void *arg);

struct curl_loop *curl_loop_new(struct event_base *base);
/* Starts a configured easy handle. On SN_OK, done will be called exactly
 * once, never from inside this call. On an error (the multi handle refused
 * it) done is not called and the caller still owns easy. */
enum sn_err curl_loop_add(struct curl_loop *l, CURL *easy, curl_loop_done_fn done, void *arg);
/* Transfers started and not yet reported. */
size_t curl_loop_running(const struct curl_loop *l);
/* Aborts what is in flight (each done gets CURLE_ABORTED_BY_CALLBACK, from
 * inside this call) and frees the loop. */
void curl_loop_free(struct curl_loop *l);

#endif
