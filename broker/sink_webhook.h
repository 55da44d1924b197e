/* Webhooks: a notice revision POSTed as a structured CloudEvent, signed as the
 * Standard Webhooks specification says, through libcurl's multi interface on
 * the loop. */
#ifndef SN_SINK_WEBHOOK_H
#define SN_SINK_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "curl_loop.h"
#include "sink.h"

struct sink_webhook_options {
    int64_t timeout_ms;
    const char *ca_file; /* NULL or "": the system's CA store */
    int allow_private;   /* 1: loopback, private and link-local targets allowed */
};

/* loop must outlive the sink. */
struct sink *sink_webhook_new(struct curl_loop *loop, const struct sink_webhook_options *opt);

/* "whsec_" + base64 of 32 random bytes (OpenSSL); the caller frees. NULL when
 * the random generator fails. */
char *webhook_secret_new(void);
/* The webhook-signature header: "v1,<base64 HMAC-SHA256>" for each secret
 * of secrets (space-separated whsec_...), space-separated, over
 * msg_id "." timestamp "." body. The caller frees; NULL when no secret is
 * valid. */
char *webhook_signature(const char *secrets, const char *msg_id, long long timestamp,
                        const char *body, size_t len);
/* Checks a target URL before it is stored: http or https, a host, no user
 * info; a literal loopback, private or link-local address unless
 * allow_private (a name is checked when it resolves, at each attempt).
 * Returns 1, or 0 with why. */
int webhook_target_ok(const char *url, int allow_private, char *why, size_t len);

#endif
