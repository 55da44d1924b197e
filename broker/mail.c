#include "mail.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters; RFC 2047 2: a line
 * holding an encoded-word at most 76. */
#define HEADER_LINE_MAX  78
#define ENCODED_LINE_MAX 76
#define ENCODED_PREFIX   "=?UTF-8?B?"
#define ENCODED_SUFFIX   "?="

/* ---- text ---- */

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (!b->data || b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(small)) {
        buf_add(b, small, (size_t)n);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

/* The buffer's text, never NULL; the caller frees. */
static char *buf_take(struct buf *b)
{
    char *s = b->data ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), its
 * code point in *cp; 0 for bytes that are not one (overlong forms and
 * surrogates included). */
static size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
    static const struct {
        unsigned char mask, lead;
        uint32_t min;
    } forms[] = {{0x80, 0x00, 0}, {0xE0, 0xC0, 0x80}, {0xF0, 0xE0, 0x800}, {0xF8, 0xF0, 0x10000}};
    for (size_t len = 1; len <= SN_ARRAY_LEN(forms); len++) {
        if ((s[0] & forms[len - 1].mask) != forms[len - 1].lead) continue;
        if (len > n) return 0;
        *cp = s[0] & (uint32_t)(~forms[len - 1].mask & 0x7F);
        for (size_t i = 1; i < len; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            *cp = (*cp << 6) | (s[i] & 0x3F);
        }
        if (*cp < forms[len - 1].min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
            return 0;
        return len;
    }
    return 0;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* How a value of a notice goes into a message. */
enum clean {
    CLEAN_LINE, /* one line: control characters (newlines too) become spaces */
    CLEAN_TEXT, /* text: newlines and tabs kept, other control characters dropped */
    CLEAN_HTML, /* CLEAN_TEXT, and the five markup characters as references */
};

/* Appends n bytes of s (n, not a NUL, ends it: a JSON string may hold
 * \u0000) cleaned as how says; bytes that are not UTF-8 are left out, so a
 * body that says charset=utf-8 is. */
static void buf_add_clean(struct buf *b, const char *s, size_t n, enum clean how)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint32_t cp;
        size_t len = utf8_char(p, (size_t)(end - p), &cp);
        if (len == 0) {
            p++;
            continue;
        }
        if (is_control(cp)) {
            if (how == CLEAN_LINE)
                buf_add(b, " ", 1);
            else if (cp == '\n' || cp == '\t')
                buf_add(b, (const char *)p, 1);
        } else if (how == CLEAN_HTML && cp == '&') {
            buf_adds(b, "&amp;");
        } else if (how == CLEAN_HTML && cp == '<') {
            buf_adds(b, "&lt;");
        } else if (how == CLEAN_HTML && cp == '>') {
            buf_adds(b, "&gt;");
        } else if (how == CLEAN_HTML && cp == '"') {
            buf_adds(b, "&quot;");
        } else if (how == CLEAN_HTML && cp == '\'') {
            buf_adds(b, "&#39;");
        } else {
            buf_add(b, (const char *)p, len);
        }
        p += len;
    }
}

static void buf_add_html(struct buf *b, const char *s)
{
    buf_add_clean(b, s, strlen(s), CLEAN_HTML);
}

/* ---- headers ---- */

static void base64(struct buf *b, const unsigned char *s, size_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        char out[4] = {digits[(v >> 18) & 63], digits[(v >> 12) & 63],
                       i + 1 < n ? digits[(v >> 6) & 63] : '=', i + 2 < n ? digits[v & 63] : '='};
        buf_add(b, out, 4);
    }
}

/* value as encoded-words, each holding whole characters (RFC 2047 5) and as
 * many as fit on its line; the words are separated by folding white space,
 * which a decoder drops between encoded-words. */
static void header_encoded(struct buf *b, size_t column, const char *value, size_t n)
{
    const size_t overhead = strlen(ENCODED_PREFIX) + strlen(ENCODED_SUFFIX);
    const unsigned char *p = (const unsigned char *)value, *end = p + n;
    while (p < end) {
        size_t room =
            ENCODED_LINE_MAX > column + overhead ? ENCODED_LINE_MAX - column - overhead : 0;
        size_t max_bytes = room / 4 * 3, take = 0;
        if (max_bytes < 4) max_bytes = 4;
        while (p + take < end) {
            uint32_t cp;
            size_t len = utf8_char(p + take, (size_t)(end - p - take), &cp);
            if (len == 0) len = 1; /* not after buf_add_clean(); never loop forever */
            if (take + len > max_bytes && take > 0) break;
            take += len;
        }
        buf_adds(b, ENCODED_PREFIX);
        base64(b, p, take);
        buf_adds(b, ENCODED_SUFFIX);
        p += take;
        if (p < end) {
            buf_adds(b, "\r\n ");
            column = 1;
        }
    }
}

/* Printable ASCII value, folded before a space where a line would pass 78
 * columns: unfolding (dropping each CRLF) gives value back. */
static void header_folded(struct buf *b, size_t column, const char *value)
{
    const char *p = value;
    int first = 1;
    while (*p) {
        const char *space = strchr(p, ' ');
        size_t word = space ? (size_t)(space - p) : strlen(p);
        if (!first) {
            if (column + 1 + word > HEADER_LINE_MAX) {
                buf_adds(b, "\r\n");
                column = 0;
            }
            buf_adds(b, " ");
            column++;
        }
        buf_add(b, p, word);
        column += word;
        first = 0;
        p += word;
        if (*p == ' ') p++;
    }
}

char *mail_header_encode(const char *name, const char *value)
{
    struct buf clean = {0}, b = {0};
    buf_add_clean(&clean, value, strlen(value), CLEAN_LINE);
    size_t len = clean.len;
    char *text = buf_take(&clean), *v = text;
    while (len > 0 && v[len - 1] == ' ')
        v[--len] = '\0';
    while (*v == ' ')
        v++, len--;

    /* Plain when every character is printable ASCII, no word could pass for
     * an encoded-word, and none is too long to fold. */
    int plain = strstr(v, "=?") == NULL;
    size_t word = 0;
    for (const char *p = v; *p && plain; p++) {
        plain = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F;
        word = *p == ' ' ? 0 : word + 1;
        if (word > HEADER_LINE_MAX - strlen(name) - 2) plain = 0;
    }
    buf_adds(&b, name);
    buf_adds(&b, ":");
    if (len > 0) {
        buf_adds(&b, " ");
        if (plain)
            header_folded(&b, strlen(name) + 2, v);
        else
            header_encoded(&b, strlen(name) + 2, v, len);
    }
    free(text);
    return buf_take(&b);
}

/* A bare address, local@domain, of printable ASCII without the characters
 * that would end it or start another in a header or the envelope. */
static int address_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@')) return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7F || strchr("<>()[],;:\"\\", *s))
            return 0;
    return 1;
}

/* "<left@right>", as address_ok() inside the brackets. */
static int message_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 5 || s[0] != '<' || s[n - 1] != '>') return 0;
    char *inner = xstrdup(s + 1);
    inner[n - 2] = '\0';
    int ok = address_ok(inner);
    free(inner);
    return ok;
}

/* Characters of the parts of a Message-ID we make: letters, digits, - and
 * _, with single dots between them. */
static int id_part_ok(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, "..")) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.", *s)) return 0;
    return 1;
}

enum sn_err mail_message_id(const char *notice_id, json_int_t revision, const char *domain,
                            char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!notice_id || !id_part_ok(notice_id)) {
        sn_errf(err, errlen, "notice id \"%s\" cannot be part of a Message-ID",
                notice_id ? notice_id : "(null)");
        return SN_ERR_INVAL;
    }
    if (!domain || !id_part_ok(domain)) {
        sn_errf(err, errlen, "\"%s\" is not a domain for a Message-ID", domain ? domain : "(null)");
        return SN_ERR_INVAL;
    }
    if (revision < 1) {
        sn_errf(err, errlen, "revision %" JSON_INTEGER_FORMAT " is not 1 or more", revision);
        return SN_ERR_INVAL;
    }
    struct buf b = {0};
    buf_addf(&b, "<%s.r%" JSON_INTEGER_FORMAT "@%s>", notice_id, revision, domain);
    *out = buf_take(&b);
    return SN_OK;
}

/* RFC 5322 3.3, in English whatever the locale, in UTC. */
static void header_date(struct buf *b, time_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    buf_addf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- the easy handle ---- */

struct mail_easy {
    CURL *easy;
    curl_mime *mime;
    struct curl_slist *headers, *recipients;
    char error[CURL_ERROR_SIZE];
};

CURL *mail_easy_handle(struct mail_easy *m)
{
    return m->easy;
}

const char *mail_easy_error(const struct mail_easy *m)
{
    return m->error;
}

void mail_easy_free(struct mail_easy *m)
{
    if (!m) return;
    /* the handle first: it refers to the MIME body and the lists */
    if (m->easy) curl_easy_cleanup(m->easy);
    curl_mime_free(m->mime);
    curl_slist_free_all(m->headers);
    curl_slist_free_all(m->recipients);
    free(m);
}

static void slist_add(struct curl_slist **list, const char *s)
{
    struct curl_slist *next = curl_slist_append(*list, s);
    if (!next) sn_oom(strlen(s));
    *list = next;
}

static void slist_add_buf(struct curl_slist **list, struct buf *b)
{
    slist_add(list, b->data);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int curl_ok(CURLcode rc, const char *what, char *err, size_t errlen)
{
    if (rc == CURLE_OK) return 1;
    if (rc == CURLE_OUT_OF_MEMORY) sn_oom(0);
    sn_errf(err, errlen, "libcurl refused %s: %s", what, curl_easy_strerror(rc));
    return 0;
}

/* curl_easy_setopt() behind a function of each type, so that a failure names
 * the option. */
static int opt_long(CURL *easy, CURLoption opt, const char *name, long value, char *err,
                    size_t errlen)
{
    return curl_ok(curl_easy_setopt(easy, opt, value), name, err, errlen);
}

static int opt_ptr(CURL *easy, CURLoption opt, const char *name, const void *value, char *err,
                   size_t errlen)
{
    return curl_ok(curl_easy_setopt(easy, opt, value), name, err, errlen);
}

#define OPT_LONG(m, opt, value) opt_long((m)->easy, opt, #opt, (long)(value), err, errlen)
#define OPT_PTR(m, opt, value)  opt_ptr((m)->easy, opt, #opt, (value), err, errlen)

static int host_is_loopback(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (strcasecmp(host, "localhost") == 0) return 1;
    if (inet_pton(AF_INET, host, addr) == 1) return addr[0] == 127;
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        char inner[64];
        snprintf(inner, sizeof(inner), "%.*s", (int)(n - 2), host + 1);
        struct in6_addr a6;
        return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return 0;
}

/* The URL's scheme must be smtp or smtps, and plain text (smtp:// without
 * STARTTLS) is for loopback only: credentials and notices never cross a
 * network in clear. *implicit_tls says smtps. */
static int server_ok(const struct mail_server *s, int *implicit_tls, char *err, size_t errlen);

enum sn_err mail_server_check(const struct mail_server *s, char *err, size_t errlen)
{
    int implicit_tls;
    return server_ok(s, &implicit_tls, err, errlen) ? SN_OK : SN_ERR_CONF;
}

static int server_ok(const struct mail_server *s, int *implicit_tls, char *err, size_t errlen)
{
    if (!s->url) {
        sn_errf(err, errlen, "the mail server has no URL");
        return 0;
    }
    CURLU *u = curl_url();
    if (!u) sn_oom(0);
    char *scheme = NULL, *host = NULL;
    int ok = 0;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, s->url, 0);
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (rc == CURLUE_OUT_OF_MEMORY) sn_oom(0);
    if (rc != CURLUE_OK)
        sn_errf(err, errlen, "the mail server URL \"%s\" is not one: %s", s->url,
                curl_url_strerror(rc));
    else if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0)
        sn_errf(err, errlen, "the mail server URL \"%s\" is not smtp:// or smtps://", s->url);
    else if (strcmp(scheme, "smtp") == 0 && !s->starttls && !host_is_loopback(host))
        sn_errf(err, errlen,
                "refusing plain-text SMTP to %s: STARTTLS or smtps:// is needed off loopback",
                host);
    else
        ok = 1;
    *implicit_tls = scheme && strcmp(scheme, "smtps") == 0;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static int message_ok(const struct mail_message *msg, char *err, size_t errlen)
{
    const struct {
        const char *name, *value, *form;
        int (*ok)(const char *);
        int optional;
    } checks[] = {
        {"sender", msg->from, "local@domain", address_ok, 0},
        {"recipient", msg->to, "local@domain", address_ok, 0},
        {"Message-ID", msg->message_id, "<left@right>", message_id_ok, 0},
        {"In-Reply-To", msg->in_reply_to, "<left@right>", message_id_ok, 1},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(checks); i++) {
        if (!checks[i].value && checks[i].optional) continue;
        if (!checks[i].value || !checks[i].ok(checks[i].value)) {
            sn_errf(err, errlen, "the %s \"%s\" is not of the form %s", checks[i].name,
                    checks[i].value ? checks[i].value : "(null)", checks[i].form);
            return 0;
        }
    }
    if (!msg->subject || !msg->text || !msg->html) {
        sn_errf(err, errlen, "a message needs a subject, a text and an HTML body");
        return 0;
    }
    return 1;
}

/* s with every line ending CRLF, as SMTP carries text (the quoted-printable
 * encoder keeps CRLF as line breaks and would escape a lone LF). */
static char *crlf_lines(const char *s)
{
    struct buf b = {0};
    for (; *s; s++) {
        if (*s == '\r' && s[1] == '\n') continue;
        if (*s == '\n' || *s == '\r')
            buf_add(&b, "\r\n", 2);
        else
            buf_add(&b, s, 1);
    }
    return buf_take(&b);
}

static int mime_body(curl_mime *mime, const char *type, const char *body, char *err, size_t errlen)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    if (!part) sn_oom(0);
    char *data = crlf_lines(body);
    int ok =
        curl_ok(curl_mime_data(part, data, CURL_ZERO_TERMINATED), "curl_mime_data", err, errlen) &&
        curl_ok(curl_mime_type(part, type), "curl_mime_type", err, errlen) &&
        curl_ok(curl_mime_encoder(part, "quoted-printable"), "curl_mime_encoder", err, errlen);
    free(data);
    return ok;
}

/* Date, From, To, Subject, Message-ID, threading, MIME-Version, and the
 * top-level Content-Type: libcurl makes the top of a MIME mail
 * multipart/mixed unless a Content-Type header says otherwise, and then
 * writes that type with its boundary (and not the header as given). */
static void message_headers(struct mail_easy *m, const struct mail_message *msg)
{
    struct buf b = {0};
    header_date(&b, msg->date ? msg->date : time(NULL));
    slist_add_buf(&m->headers, &b);
    buf_addf(&b, "From: %s", msg->from);
    slist_add_buf(&m->headers, &b);
    buf_addf(&b, "To: %s", msg->to);
    slist_add_buf(&m->headers, &b);
    char *subject = mail_header_encode("Subject", msg->subject);
    slist_add(&m->headers, subject);
    free(subject);
    buf_addf(&b, "Message-ID: %s", msg->message_id);
    slist_add_buf(&m->headers, &b);
    if (msg->in_reply_to) {
        buf_addf(&b, "In-Reply-To: %s", msg->in_reply_to);
        slist_add_buf(&m->headers, &b);
        buf_addf(&b, "References: %s", msg->in_reply_to);
        slist_add_buf(&m->headers, &b);
    }
    /* RFC 3834: machine-made, so auto-responders stay quiet */
    slist_add(&m->headers, "Auto-Submitted: auto-generated");
    slist_add(&m->headers, "MIME-Version: 1.0");
    slist_add(&m->headers, "Content-Type: multipart/alternative");
}

enum sn_err mail_easy_new(const struct mail_server *server, const struct mail_message *msg,
                          struct mail_easy **out, char *err, size_t errlen)
{
    *out = NULL;
    int implicit_tls;
    if (!server_ok(server, &implicit_tls, err, errlen) || !message_ok(msg, err, errlen))
        return SN_ERR_INVAL;

    struct mail_easy *m = xcalloc(1, sizeof(*m));
    m->easy = curl_easy_init();
    if (!m->easy) {
        sn_errf(err, errlen, "curl_easy_init failed");
        free(m);
        return SN_ERR_CONF;
    }
    struct buf b = {0};
    buf_addf(&b, "<%s>", msg->to);
    slist_add_buf(&m->recipients, &b);
    message_headers(m, msg);
    m->mime = curl_mime_init(m->easy);
    if (!m->mime) sn_oom(0);
    buf_addf(&b, "<%s>", msg->from);

    /* RFC 2046 5.1.4: the alternatives in increasing order of preference */
    int ok = mime_body(m->mime, "text/plain; charset=utf-8", msg->text, err, errlen) &&
             mime_body(m->mime, "text/html; charset=utf-8", msg->html, err, errlen) &&
             OPT_PTR(m, CURLOPT_ERRORBUFFER, m->error) && OPT_PTR(m, CURLOPT_URL, server->url) &&
             OPT_PTR(m, CURLOPT_PROTOCOLS_STR, "smtp,smtps") && OPT_LONG(m, CURLOPT_NOSIGNAL, 1) &&
             OPT_PTR(m, CURLOPT_MAIL_FROM, b.data) &&
             OPT_PTR(m, CURLOPT_MAIL_RCPT, m->recipients) &&
             OPT_PTR(m, CURLOPT_HTTPHEADER, m->headers) && OPT_PTR(m, CURLOPT_MIMEPOST, m->mime);
    if (ok && !implicit_tls)
        ok = OPT_LONG(m, CURLOPT_USE_SSL, server->starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE);
    if (ok && server->ca_file) ok = OPT_PTR(m, CURLOPT_CAINFO, server->ca_file);
    if (ok && server->username)
        ok = OPT_PTR(m, CURLOPT_USERNAME, server->username) &&
             OPT_PTR(m, CURLOPT_PASSWORD, server->password ? server->password : "");
    if (ok && server->timeout_ms > 0) ok = OPT_LONG(m, CURLOPT_TIMEOUT_MS, server->timeout_ms);
    free(b.data);
    if (!ok) {
        mail_easy_free(m);
        return SN_ERR_CONF;
    }
    *out = m;
    return SN_OK;
}

/* ---- a notice for people ---- */

static const char *const statuses[] = {"issued", "escalated", "updated", "resolved"};
/* the severities of rules.v1.json, each with the colour of its badge */
static const struct {
    const char *name, *colour;
} severities[] = {
    {"advisory", "#1f5fa8"},
    {"watch", "#8a6100"},
    {"warning", "#b34700"},
    {"critical", "#a1001a"},
};

/* The breakdowns of the schema, in the order shown. */
static const struct {
    const char *member, *label;
} breakdowns[] = {
    {"cause", "Reviews by cause"},
    {"age_band", "Reviews by age band"},
    {"partner", "Reviews by partner agency"},
    {"priority", "Reviews by priority"},
};

/* One line of the table both bodies show: a label and a value built from
 * the notice, raw (each body escapes it its own way). */
struct field {
    const char *label;
    struct buf value;
};

#define FIELDS_MAX 20

struct fields {
    struct field f[FIELDS_MAX];
    size_t n;
};

static struct buf *field_add(struct fields *fs, const char *label)
{
    if (fs->n == FIELDS_MAX) abort();
    fs->f[fs->n].label = label;
    fs->f[fs->n].value = (struct buf){0};
    return &fs->f[fs->n++].value;
}

static void fields_free(struct fields *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->f[i].value.data);
}

static const json_t *get_string(const json_t *obj, const char *what, const char *name, char *err,
                                size_t errlen)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v)) sn_errf(err, errlen, "%s lacks the string member \"%s\"", what, name);
    return json_is_string(v) ? v : NULL;
}

static int get_count(const json_t *obj, const char *what, const char *name, json_int_t *out,
                     char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        sn_errf(err, errlen, "%s lacks the member \"%s\", a non-negative integer", what, name);
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

static void add_json_string(struct buf *b, const json_t *s)
{
    buf_add(b, json_string_value(s), json_string_length(s));
}

/* YYYY-MM: a notice never states a finer date (schemas/safety-notice.v1.json). */
static int month_ok(const char *s)
{
    return strlen(s) == 7 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
           isdigit((unsigned char)s[2]) && isdigit((unsigned char)s[3]) && s[4] == '-' &&
           ((s[5] == '0' && s[6] >= '1' && s[6] <= '9') ||
            (s[5] == '1' && s[6] >= '0' && s[6] <= '2'));
}

static int name_in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

/* "code N, code <N" of one breakdown, "none" when it is empty; a cell is a
 * number of reviews, or "<N" when it is too small to show. */
static int breakdown_value(struct buf *b, const json_t *cells, const char *member, char *err,
                           size_t errlen)
{
    const char *code;
    const json_t *v;
    int first = 1;
    if (!json_is_object(cells)) {
        sn_errf(err, errlen, "notice breakdown lacks the member \"%s\", an object", member);
        return 0;
    }
    json_object_foreach((json_t *)cells, code, v)
    {
        int small = json_is_string(v) && json_string_value(v)[0] == '<' &&
                    isdigit((unsigned char)json_string_value(v)[1]);
        if (!(json_is_integer(v) && json_integer_value(v) >= 1) && !small) {
            sn_errf(err, errlen, "notice breakdown.%s.%s is neither a count nor \"<N\"", member,
                    code);
            return 0;
        }
        buf_adds(b, first ? "" : ", ");
        buf_adds(b, code);
        if (small)
            buf_addf(b, " %s", json_string_value(v));
        else
            buf_addf(b, " %" JSON_INTEGER_FORMAT, json_integer_value(v));
        first = 0;
    }
    if (first) buf_adds(b, "none");
    return 1;
}

/* What the notice says, as fields; the headline, summary, status and
 * severity in the out-parameters (borrowed from notice). */
static int notice_fields(const json_t *n, struct fields *fs, const json_t **headline,
                         const json_t **summary, const char **status, const char **severity,
                         char *err, size_t errlen)
{
    const json_t *window = json_object_get(n, "window"), *counts = json_object_get(n, "counts");
    const json_t *id, *rule, *topic, *issued_at, *from, *to, *length, *st, *sev;
    json_int_t revision, reviews, jurisdiction_count, opportunities, needs, unnamed;
    if (!json_is_object(n)) {
        sn_errf(err, errlen, "a notice must be a JSON object");
        return 0;
    }
    if (!(id = get_string(n, "notice", "id", err, errlen)) ||
        !(st = get_string(n, "notice", "status", err, errlen)) ||
        !(sev = get_string(n, "notice", "severity", err, errlen)) ||
        !(rule = get_string(n, "notice", "rule", err, errlen)) ||
        !(topic = get_string(n, "notice", "topic", err, errlen)) ||
        !(*headline = get_string(n, "notice", "headline", err, errlen)) ||
        !(*summary = get_string(n, "notice", "summary", err, errlen)) ||
        !(issued_at = get_string(n, "notice", "issued_at", err, errlen)) ||
        !(from = get_string(window, "notice.window", "from", err, errlen)) ||
        !(to = get_string(window, "notice.window", "to", err, errlen)) ||
        !(length = get_string(window, "notice.window", "length", err, errlen)) ||
        !get_count(n, "notice", "revision", &revision, err, errlen) ||
        !get_count(n, "notice", "unnamed_jurisdictions", &unnamed, err, errlen) ||
        !get_count(counts, "notice.counts", "reviews", &reviews, err, errlen) ||
        !get_count(counts, "notice.counts", "jurisdictions", &jurisdiction_count, err, errlen) ||
        !get_count(counts, "notice.counts", "improvement_opportunities", &opportunities, err,
                   errlen) ||
        !get_count(counts, "notice.counts", "family_needs", &needs, err, errlen))
        return 0;
    *status = json_string_value(st);
    *severity = json_string_value(sev);
    if (!name_in(*status, statuses, SN_ARRAY_LEN(statuses))) {
        sn_errf(err, errlen, "notice status \"%s\" is not issued, escalated, updated or resolved",
                *status);
        return 0;
    }
    int known = 0;
    for (size_t i = 0; i < SN_ARRAY_LEN(severities); i++)
        known |= strcmp(*severity, severities[i].name) == 0;
    if (!known) {
        sn_errf(err, errlen, "notice severity \"%s\" is not advisory, watch, warning or critical",
                *severity);
        return 0;
    }
    if (!month_ok(json_string_value(from)) || !month_ok(json_string_value(to))) {
        sn_errf(err, errlen, "notice window from and to must be months (YYYY-MM)");
        return 0;
    }
    const json_t *group = json_object_get(n, "group"), *named = json_object_get(n, "jurisdictions");
    const json_t *breakdown = json_object_get(n, "breakdown"), *v;
    if (!json_is_object(group) || !json_is_array(named) || !json_is_object(breakdown)) {
        sn_errf(err, errlen,
                "notice lacks group or breakdown (objects) or jurisdictions (an array)");
        return 0;
    }

    add_json_string(field_add(fs, "Severity"), sev);
    add_json_string(field_add(fs, "Status"), st);
    buf_addf(field_add(fs, "Revision"), "%" JSON_INTEGER_FORMAT, revision);
    add_json_string(field_add(fs, "Rule"), rule);
    add_json_string(field_add(fs, "Topic"), topic);
    if (json_object_size(group) > 0) {
        struct buf *b = field_add(fs, "Group");
        const char *label;
        json_object_foreach((json_t *)group, label, v)
        {
            if (!json_is_string(v)) {
                sn_errf(err, errlen, "notice group label \"%s\" is not a string", label);
                return 0;
            }
            buf_addf(b, "%s%s=", b->len ? ", " : "", label);
            add_json_string(b, v);
        }
    }
    struct buf *b = field_add(fs, "Window");
    add_json_string(b, from);
    buf_adds(b, " to ");
    add_json_string(b, to);
    buf_adds(b, " (");
    add_json_string(b, length);
    buf_adds(b, ")");
    buf_addf(field_add(fs, "Reviews"), "%" JSON_INTEGER_FORMAT, reviews);

    b = field_add(fs, "Jurisdictions");
    buf_addf(b, "%" JSON_INTEGER_FORMAT, jurisdiction_count);
    size_t i;
    json_array_foreach(named, i, v)
    {
        if (!json_is_string(v)) {
            sn_errf(err, errlen, "notice jurisdictions[%zu] is not a string", i);
            return 0;
        }
        buf_adds(b, i == 0 ? ": " : ", ");
        add_json_string(b, v);
    }
    if (unnamed > 0)
        buf_addf(b, "%s%" JSON_INTEGER_FORMAT " not named", json_array_size(named) ? " and " : ": ",
                 unnamed);
    buf_addf(field_add(fs, "Improvement opportunities"), "%" JSON_INTEGER_FORMAT, opportunities);
    buf_addf(field_add(fs, "Family needs"), "%" JSON_INTEGER_FORMAT, needs);
    for (i = 0; i < SN_ARRAY_LEN(breakdowns); i++)
        if (!breakdown_value(field_add(fs, breakdowns[i].label),
                             json_object_get(breakdown, breakdowns[i].member), breakdowns[i].member,
                             err, errlen))
            return 0;
    add_json_string(field_add(fs, "Issued at"), issued_at);
    add_json_string(field_add(fs, "Notice"), id);
    return 1;
}

#define SMALL_CELLS_NOTE                                                                           \
    "A breakdown counts distinct reviews; \"<N\" stands for a number below N, withheld so that "   \
    "no "                                                                                          \
    "family can be singled out."
#define PRIVACY_NOTE                                                                               \
    "This notice carries aggregates only: no review identifiers, no case narratives and no date "  \
    "finer than a month."

static char *render_text(const struct fields *fs, const json_t *headline, const json_t *summary,
                         const char *link)
{
    struct buf b = {0};
    size_t width = 0;
    for (size_t i = 0; i < fs->n; i++)
        if (strlen(fs->f[i].label) > width) width = strlen(fs->f[i].label);
    buf_add_clean(&b, json_string_value(headline), json_string_length(headline), CLEAN_LINE);
    buf_adds(&b, "\n\n");
    buf_add_clean(&b, json_string_value(summary), json_string_length(summary), CLEAN_TEXT);
    buf_adds(&b, "\n\n");
    for (size_t i = 0; i < fs->n; i++) {
        buf_addf(&b, "%s:%*s ", fs->f[i].label, (int)(width - strlen(fs->f[i].label)), "");
        buf_add_clean(&b, fs->f[i].value.data, fs->f[i].value.len, CLEAN_LINE);
        buf_adds(&b, "\n");
    }
    buf_adds(&b, "\n" SMALL_CELLS_NOTE "\n");
    if (link) {
        buf_adds(&b, "\nThe notice on the dashboard: ");
        buf_add_clean(&b, link, strlen(link), CLEAN_LINE);
        buf_adds(&b, "\n");
    }
    buf_adds(&b, "\n-- \n" PRIVACY_NOTE "\n");
    return buf_take(&b);
}

static char *render_html(const struct fields *fs, const char *subject, const json_t *headline,
                         const json_t *summary, const char *severity, const char *link)
{
    const char *colour = severities[0].colour;
    for (size_t i = 0; i < SN_ARRAY_LEN(severities); i++)
        if (strcmp(severity, severities[i].name) == 0) colour = severities[i].colour;
    struct buf b = {0};
    buf_adds(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    buf_add_html(&b, subject);
    buf_adds(&b, "</title>\n</head>\n"
                 "<body style=\"margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;"
                 "font-size:14px;line-height:1.4;color:#1a1a1a;background:#ffffff;\">\n");
    buf_addf(&b,
             "<p style=\"margin:0 0 8px 0;\"><span style=\"display:inline-block;padding:2px 8px;"
             "background:%s;color:#ffffff;font-weight:bold;text-transform:uppercase;\">",
             colour);
    buf_add_html(&b, severity);
    buf_adds(&b, "</span></p>\n<h1 style=\"margin:0 0 12px 0;font-size:20px;\">");
    buf_add_clean(&b, json_string_value(headline), json_string_length(headline), CLEAN_HTML);
    buf_adds(&b, "</h1>\n<p style=\"margin:0 0 16px 0;white-space:pre-line;\">");
    buf_add_clean(&b, json_string_value(summary), json_string_length(summary), CLEAN_HTML);
    buf_adds(&b, "</p>\n<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" "
                 "style=\"border-collapse:collapse;margin:0 0 16px 0;\">\n");
    for (size_t i = 0; i < fs->n; i++) {
        buf_adds(&b, "<tr><th scope=\"row\" style=\"text-align:left;vertical-align:top;"
                     "padding:4px 16px 4px 0;border-bottom:1px solid #dddddd;font-weight:bold;\">");
        buf_add_html(&b, fs->f[i].label);
        buf_adds(&b, "</th><td style=\"vertical-align:top;padding:4px 0;"
                     "border-bottom:1px solid #dddddd;\">");
        buf_add_clean(&b, fs->f[i].value.data, fs->f[i].value.len, CLEAN_HTML);
        buf_adds(&b, "</td></tr>\n");
    }
    buf_adds(&b, "</table>\n<p style=\"margin:0 0 16px 0;font-size:12px;color:#555555;\">");
    buf_add_html(&b, SMALL_CELLS_NOTE);
    buf_adds(&b, "</p>\n");
    if (link) {
        buf_adds(&b, "<p style=\"margin:0 0 16px 0;\"><a href=\"");
        buf_add_html(&b, link);
        buf_adds(&b, "\" style=\"color:#1f5fa8;\">The notice on the dashboard</a></p>\n");
    }
    buf_adds(&b, "<p style=\"margin:16px 0 0 0;font-size:12px;color:#555555;\">");
    buf_add_html(&b, PRIVACY_NOTE);
    buf_adds(&b, "</p>\n</body>\n</html>\n");
    return buf_take(&b);
}

/* http:// or https://, and nothing a URL never holds (spaces, controls). */
static int link_ok(const char *link)
{
    if (strncasecmp(link, "https://", 8) != 0 && strncasecmp(link, "http://", 7) != 0) return 0;
    for (const unsigned char *p = (const unsigned char *)link; *p; p++)
        if (*p <= 0x20 || *p == 0x7F) return 0;
    return 1;
}

enum sn_err mail_render_notice(const json_t *notice, const char *link, char **subject, char **text,
                               char **html, char *err, size_t errlen)
{
    *subject = *text = *html = NULL;
    if (link && !link_ok(link)) {
        sn_errf(err, errlen, "the notice link must be an http:// or https:// URL without spaces");
        return SN_ERR_INVAL;
    }
    struct fields fs = {.n = 0};
    const json_t *headline, *summary;
    const char *status, *severity;
    if (!notice_fields(notice, &fs, &headline, &summary, &status, &severity, err, errlen)) {
        fields_free(&fs);
        return SN_ERR_INVAL;
    }
    struct buf b = {0};
    buf_adds(&b, "[");
    for (const char *p = severity; *p; p++)
        buf_addf(&b, "%c", toupper((unsigned char)*p));
    buf_adds(&b, "] ");
    if (strcmp(status, "issued") != 0)
        buf_addf(&b, "%c%s: ", toupper((unsigned char)status[0]), status + 1);
    buf_add_clean(&b, json_string_value(headline), json_string_length(headline), CLEAN_LINE);
    *subject = buf_take(&b);
    *text = render_text(&fs, headline, summary, link);
    *html = render_html(&fs, *subject, headline, summary, severity, link);
    fields_free(&fs);
    return SN_OK;
}
