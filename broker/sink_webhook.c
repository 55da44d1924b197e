#include "sink_webhook.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "sn.h"

#define SECRET_PREFIX      "whsec_"
#define MAX_RETRY_AFTER_MS (24LL * 3600 * 1000)

struct sink_webhook {
    struct sink base;
    struct curl_loop *loop;
    struct sink_webhook_options opt;
    char *ca_file;
};

/* One POST in flight. */
struct attempt {
    struct sink_webhook *s;
    struct delivery *d;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char blocked[INET6_ADDRSTRLEN]; /* the refused address, if any */
    int64_t retry_after_ms;
};

/* ---- signatures ---- */

char *webhook_secret_new(void)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return NULL;
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
    size_t len = strlen(SECRET_PREFIX) + strlen(b64) + 1;
    char *secret = xmalloc(len);
    snprintf(secret, len, SECRET_PREFIX "%s", b64);
    return secret;
}

/* The key of one "whsec_<base64>" secret: its base64 part decoded. Returns
 * the key's length, or -1. */
static int secret_key(const char *secret, size_t len, unsigned char *key, size_t keylen)
{
    size_t prefix = strlen(SECRET_PREFIX);
    if (len > prefix && strncmp(secret, SECRET_PREFIX, prefix) == 0) {
        secret += prefix;
        len -= prefix;
    }
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > keylen) return -1;
    int n = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)len);
    if (n < 0) return -1;
    /* EVP_DecodeBlock counts the padding's bytes as data */
    if (secret[len - 1] == '=') n--;
    if (secret[len - 2] == '=') n--;
    return n;
}

char *webhook_signature(const char *secrets, const char *msg_id, long long timestamp,
                        const char *body, size_t len)
{
    /* what is signed: id "." timestamp "." body */
    size_t head = (size_t)snprintf(NULL, 0, "%s.%lld.", msg_id, timestamp);
    size_t signed_len = head + len;
    unsigned char *content = xmalloc(signed_len + 1);
    snprintf((char *)content, head + 1, "%s.%lld.", msg_id, timestamp);
    memcpy(content + head, body, len);

    size_t cap = strlen(secrets) * 2 + 128, off = 0;
    char *out = xcalloc(1, cap);
    for (const char *p = secrets; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0) break;
        unsigned char key[256], mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int key_len = secret_key(p, n, key, sizeof(key));
        p += n;
        if (key_len <= 0 || !HMAC(EVP_sha256(), key, key_len, content, signed_len, mac, &mac_len))
            continue;
        char b64[96];
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
        off += (size_t)snprintf(out + off, cap - off, "%sv1,%s", off ? " " : "", b64);
    }
    free(content);
    if (off == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- targets ---- */

/* Loopback, private (RFC 1918, unique local), link-local, CGNAT, unspecified,
 * multicast and broadcast: what a webhook must not reach from outside unless
 * the operator says so (server-side request forgery). */
static int address_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
               (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
               (a >> 16) == (169u << 8 | 254) || (a >> 22) == (100u << 2 | 1) || (a >> 28) == 14 ||
               (a >> 28) == 15;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return address_is_private((const struct sockaddr *)&v4);
        }
        return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
               IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
               (a->s6_addr[0] & 0xfe) == 0xfc; /* fc00::/7 */
    }
    return 1;
}

int webhook_target_ok(const char *url, int allow_private, char *why, size_t len)
{
    CURLU *u = curl_url();
    if (!u) sn_oom(0);
    char *scheme = NULL, *host = NULL, *user = NULL;
    int ok = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, len, "is not an absolute URL (https://host/path)");
    } else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        snprintf(why, len, "must be an http or https URL, not %s", scheme);
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(why, len, "must not carry a user name or password");
    } else {
        /* a literal address: [v6] comes back with its brackets */
        char literal[INET6_ADDRSTRLEN + 2];
        snprintf(literal, sizeof(literal), "%s", host);
        if (literal[0] == '[') {
            literal[strcspn(literal, "]")] = '\0';
            memmove(literal, literal + 1, strlen(literal));
        }
        struct sockaddr_in v4 = {.sin_family = AF_INET};
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
        int is_private = 0;
        if (inet_pton(AF_INET, literal, &v4.sin_addr) == 1)
            is_private = address_is_private((const struct sockaddr *)&v4);
        else if (inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1)
            is_private = address_is_private((const struct sockaddr *)&v6);
        else if (strcasecmp(literal, "localhost") == 0)
            is_private = 1;
        if (is_private && !allow_private)
            snprintf(why, len,
                     "is a loopback, private or link-local address (refused unless "
                     "webhook.allow_private_targets is true)");
        else
            ok = 1;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

/* Every connection curl opens passes here: the address it is about to reach,
 * after DNS, so a name that resolves to a private address is caught at each
 * attempt (not only when the subscription was made). */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct attempt *at = clientp;
    (void)purpose;
    if (!at->s->opt.allow_private && address_is_private(&addr->addr)) {
        const void *raw = addr->family == AF_INET6
                              ? (const void *)&((const struct sockaddr_in6 *)&addr->addr)->sin6_addr
                              : (const void *)&((const struct sockaddr_in *)&addr->addr)->sin_addr;
        if (!inet_ntop(addr->family, raw, at->blocked, sizeof(at->blocked)))
            snprintf(at->blocked, sizeof(at->blocked), "?");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Retry-After: delta-seconds or an HTTP-date. */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct attempt *at = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        char value[128];
        snprintf(value, sizeof(value), "%.*s", (int)(len - (sizeof(name) - 1)),
                 buf + sizeof(name) - 1);
        char *v = value;
        while (isspace((unsigned char)*v))
            v++;
        v[strcspn(v, "\r\n")] = '\0';
        char *end;
        long long seconds = strtoll(v, &end, 10);
        if (end != v && *end == '\0' && seconds >= 0) {
            at->retry_after_ms = seconds * 1000;
        } else {
            time_t when = curl_getdate(v, NULL);
            if (when > 0) at->retry_after_ms = ((int64_t)when - (int64_t)time(NULL)) * 1000;
        }
        if (at->retry_after_ms < 0) at->retry_after_ms = 0;
        if (at->retry_after_ms > MAX_RETRY_AFTER_MS) at->retry_after_ms = MAX_RETRY_AFTER_MS;
    }
    return len;
}

/* The reply's body is not needed: read and dropped. */
static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf;
    (void)arg;
    return size * n;
}

static void finish(struct attempt *at, int delivered)
{
    struct sink *base = &at->s->base;
    struct delivery *d = at->d;
    curl_slist_free_all(at->headers);
    free(at);
    base->done(d, delivered, base->done_arg);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    struct attempt *at = arg;
    struct delivery *d = at->d;
    long code = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) code = 0;
    curl_easy_cleanup(easy);
    d->status_code = (int)code;
    d->retry_after_ms = -1;
    if (result != CURLE_OK) {
        if (at->blocked[0])
            snprintf(d->error, sizeof(d->error),
                     "the target resolves to %s, a loopback, private or link-local address "
                     "(refused unless webhook.allow_private_targets is true)",
                     at->blocked);
        else
            snprintf(d->error, sizeof(d->error), "%s%s%s", curl_easy_strerror(result),
                     at->errbuf[0] ? ": " : "", at->errbuf);
        finish(at, 0);
        return;
    }
    if (code >= 200 && code < 300) {
        finish(at, 1);
        return;
    }
    snprintf(d->error, sizeof(d->error), "the receiver answered HTTP %ld", code);
    if (code == 410) d->gone = 1;
    if ((code == 429 || code == 503) && at->retry_after_ms >= 0)
        d->retry_after_ms = at->retry_after_ms;
    finish(at, 0);
}

static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct curl_slist *grown = curl_slist_append(list, line);
    if (!grown) sn_oom(strlen(line));
    return grown;
}

static int set_options(CURL *easy, struct attempt *at, const char *body, size_t len)
{
    const struct sink_webhook_options *opt = &at->s->opt;
    char agent[64];
    snprintf(agent, sizeof(agent), "sn-broker/%s", SN_VERSION);
    return curl_easy_setopt(easy, CURLOPT_URL, at->d->target) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)opt->timeout_ms) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)len) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_HTTPHEADER, at->headers) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_USERAGENT, agent) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, at->errbuf) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, at) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_HEADERDATA, at) != CURLE_OK ||
           curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
           (at->s->ca_file && curl_easy_setopt(easy, CURLOPT_CAINFO, at->s->ca_file) != CURLE_OK);
}

static void fail_soon(struct attempt *at, const char *why)
{
    struct sink *base = &at->s->base;
    struct delivery *d = at->d;
    snprintf(d->error, sizeof(d->error), "%s", why);
    curl_slist_free_all(at->headers);
    free(at);
    sink_fail_soon(base, d);
}

static void webhook_send(struct sink *base, struct delivery *d)
{
    struct sink_webhook *s = (struct sink_webhook *)base;
    struct attempt *at = xcalloc(1, sizeof(*at));
    at->s = s;
    at->d = d;
    at->retry_after_ms = -1;
    d->gone = d->permanent = 0;
    d->status_code = 0;
    d->error[0] = '\0';

    /* a digest carries its CloudEvent, made when it was stored */
    json_t *event = d->kind == DELIVERY_DIGEST ? json_incref(json_object_get(d->notice, "event"))
                                               : sink_cloudevent(d->notice);
    char *body = event ? json_dumps(event, JSON_COMPACT) : xstrdup("{}");
    json_decref(event);
    if (!body) sn_oom(0);
    char msg_id[64];
    unsigned char nonce[8];
    if (d->id)
        snprintf(msg_id, sizeof(msg_id), "msg_%lld", d->id);
    else if (RAND_bytes(nonce, sizeof(nonce)) == 1)
        /* test events are not deliveries: each its own id */
        snprintf(msg_id, sizeof(msg_id), "msg_test_%02x%02x%02x%02x%02x%02x%02x%02x", nonce[0],
                 nonce[1], nonce[2], nonce[3], nonce[4], nonce[5], nonce[6], nonce[7]);
    else
        snprintf(msg_id, sizeof(msg_id), "msg_test_%lld", (long long)time(NULL));
    long long now = (long long)time(NULL);
    char *signature =
        d->secrets ? webhook_signature(d->secrets, msg_id, now, body, strlen(body)) : NULL;
    if (!signature) {
        free(body);
        fail_soon(at, "the subscription has no valid secret to sign with");
        return;
    }
    at->headers = add_header(NULL, "Content-Type: application/cloudevents+json");
    at->headers = add_header(at->headers, "webhook-id: %s", msg_id);
    at->headers = add_header(at->headers, "webhook-timestamp: %lld", now);
    at->headers = add_header(at->headers, "webhook-signature: %s", signature);
    at->headers = add_header(at->headers, "Expect:");
    free(signature);

    CURL *easy = curl_easy_init();
    if (!easy) sn_oom(0);
    int bad = set_options(easy, at, body, strlen(body));
    free(body);
    if (bad || curl_loop_add(s->loop, easy, on_done, at) != SN_OK) {
        curl_easy_cleanup(easy);
        fail_soon(at, "libcurl refused the request (see the log)");
        log_error(json_pack("{s:s}", "target", d->target), "webhook: cannot start the request");
    }
}

static int webhook_ready(const struct sink *s)
{
    (void)s;
    return 1;
}

static void webhook_free(struct sink *base)
{
    struct sink_webhook *s = (struct sink_webhook *)base;
    free(s->ca_file);
    free(s);
}

static const struct sink_ops webhook_ops = {"webhook", webhook_send, webhook_ready, webhook_free};

struct sink *sink_webhook_new(struct curl_loop *loop, const struct sink_webhook_options *opt)
{
    struct sink_webhook *s = xcalloc(1, sizeof(*s));
    s->base.ops = &webhook_ops;
    s->loop = loop;
    s->opt = *opt;
    s->ca_file = opt->ca_file && opt->ca_file[0] ? xstrdup(opt->ca_file) : NULL;
    s->opt.ca_file = s->ca_file;
    return &s->base;
}
