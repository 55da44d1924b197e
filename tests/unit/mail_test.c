/* mail: a notice rendered for people (every field, escaping, what is refused,
 * that nothing but the schema's members gets out), Message-IDs, RFC 2047
 * headers decoded back, and whole messages sent by libcurl to an SMTP
 * listener forked by the test, then taken apart here: the top-level
 * multipart/alternative, both parts with their charset and quoted-printable
 * bodies decoded back to what was rendered. The test fixture is checked
 * against schemas/safety-notice.v1.json. Captured messages go to run_dir,
 * which main() removes. */
#include <check.h>
#include <ctype.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail.h"
#include "schema.h"
#include "test_main.h"
#include "test_schemas.h"
#include "test_util.h"

/* Check's messages stop at 4 KiB (CK_MAX_MSG_SIZE): a body is cut short. */
#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%.2500s", (needle),    \
                  (haystack))
#define ck_assert_lacks(haystack, needle)                                                          \
    ck_assert_msg(strstr((haystack), (needle)) == NULL, "expected no '%s' in:\n%.2500s", (needle), \
                  (haystack))

#define NOTICE_ID "sn-5d1f0c2a9b7e4f31a2c0"
#define LINK      "https://dashboard.npcs.example/notices/" NOTICE_ID
#define FROM      "notices@npcs.example"
#define TO        "safety@county.example"

static char run_dir[64];
static struct schema_set *schemas;

/* ---- notices ---- */

static json_t *parse(const char *text)
{
    return test_json_parse(text, 0);
}

static const char *const base_revision =
    "{\"id\": \"" NOTICE_ID "\", \"revision\": 1, \"status\": \"issued\","
    " \"rule\": \"teamwork-law-enforcement\", \"severity\": \"advisory\","
    " \"group\": {\"theme\": \"teamwork_coordination\", \"partner\": \"law_enforcement\"},"
    " \"topic\": \"notices.teamwork_coordination.law_enforcement\","
    " \"headline\": \"Coordination with law enforcement: 5 reviews from 4 jurisdictions\","
    " \"summary\": \"Reviews finalized in the last 180 days found coordination wanting.\","
    " \"window\": {\"from\": \"2026-01\", \"to\": \"2026-06\", \"length\": \"180 days\"},"
    " \"counts\": {\"reviews\": 5, \"jurisdictions\": 4, \"improvement_opportunities\": 6,"
    "   \"family_needs\": 2},"
    " \"jurisdictions\": [\"US-CA\", \"US-MN\", \"US-TX-201\"], \"unnamed_jurisdictions\": 1,"
    " \"breakdown\": {\"cause\": {\"suid\": 3, \"abusive_head_trauma\": \"<3\"},"
    "   \"age_band\": {\"0-3\": 5}, \"partner\": {\"law_enforcement\": 5},"
    "   \"priority\": {\"high\": 4, \"low\": \"<3\"}},"
    " \"issued_at\": \"2026-06-01T09:00:00Z\"}";

/* The test notice with members replaced from patch (a JSON object; null
 * removes one); a new reference. */
static json_t *notice_with(const char *patch)
{
    json_t *n = parse(base_revision);
    if (!patch) return n;
    json_t *p = parse(patch);
    const char *key;
    json_t *v;
    json_object_foreach(p, key, v)
    {
        if (json_is_null(v))
            json_object_del(n, key);
        else
            json_object_set(n, key, v);
    }
    json_decref(p);
    return n;
}

struct rendered {
    char *subject, *text, *html;
};

static struct rendered render(const json_t *notice, const char *link)
{
    struct rendered r;
    char err[512] = "";
    enum sn_err rc =
        mail_render_notice(notice, link, &r.subject, &r.text, &r.html, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "mail_render_notice: expected SN_OK, got %s: %s", sn_strerror(rc),
                  err);
    return r;
}

static void rendered_free(struct rendered *r)
{
    free(r->subject);
    free(r->text);
    free(r->html);
}

/* The value of the line "label: value" of a text body, spaces trimmed; the
 * caller frees. */
static char *text_field(const char *text, const char *label)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "\n%s:", label);
    const char *p = strstr(text, prefix);
    ck_assert_msg(p != NULL, "expected a line '%s:' in:\n%s", label, text);
    p += strlen(prefix);
    while (*p == ' ')
        p++;
    return strndup(p, strcspn(p, "\n"));
}

static void expect_text_field(const char *text, const char *label, const char *value)
{
    char *got = text_field(text, label);
    ck_assert_msg(strcmp(got, value) == 0, "text field %s: expected '%s', got '%s'", label, value,
                  got);
    free(got);
}

/* ---- decoding what was sent ---- */

static int b64_value(char c)
{
    const char *digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(digits, c) : NULL;
    return p ? (int)(p - digits) : -1;
}

/* Base64 of n characters -> bytes (NUL-terminated), *len their number; NULL
 * if it is not base64. */
static char *b64_decode(const char *s, size_t n, size_t *len)
{
    if (n % 4 != 0) return NULL;
    char *out = calloc(1, n / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' ? 0 : b64_value(s[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
            free(out);
            return NULL;
        }
        unsigned int w = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        out[o++] = (char)(w >> 16);
        if (s[i + 2] != '=') out[o++] = (char)(w >> 8 & 0xFF);
        if (s[i + 3] != '=') out[o++] = (char)(w & 0xFF);
    }
    *len = o;
    return out;
}

/* 1 if s holds only whole, well-formed UTF-8 characters (no overlong forms,
 * no surrogates). */
static int utf8_whole(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t len = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : 4;
        if ((s[i] & 0xF8) == 0xF8 || (s[i] & 0xC0) == 0x80 || i + len > n) return 0;
        unsigned int cp = len == 1 ? s[i] : s[i] & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned int min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* A header as mail_header_encode() or the wire has it ("Name: value", folded)
 * -> its value as a reader sees it: plain text unfolded, or encoded-words
 * (=?UTF-8?B?...?=, separated by folding white space) decoded and joined.
 * Each encoded-word must be at most 75 characters and hold whole UTF-8
 * characters. The caller frees. */
static char *header_decode(const char *header, const char *name)
{
    size_t nlen = strlen(name);
    ck_assert_msg(strncasecmp(header, name, nlen) == 0 && header[nlen] == ':',
                  "expected a %s header, got '%s'", name, header);
    const char *v = header + nlen + 1;
    while (*v == ' ')
        v++;
    char *out = calloc(1, strlen(v) + 1);
    if (strncmp(v, "=?", 2) != 0) {
        /* unfolding: each CRLF before white space goes */
        size_t o = 0;
        for (const char *p = v; *p; p++) {
            if (p[0] == '\r' && p[1] == '\n') {
                ck_assert_msg(p[2] == ' ' || p[2] == '\t', "CRLF without folding in '%s'", header);
                p++;
                continue;
            }
            out[o++] = *p;
        }
        return out;
    }
    size_t o = 0;
    const char *p = v;
    while (*p) {
        ck_assert_msg(strncmp(p, "=?UTF-8?B?", 10) == 0, "expected an encoded-word at '%s' of '%s'",
                      p, header);
        const char *end = strstr(p + 10, "?=");
        ck_assert_msg(end != NULL, "unterminated encoded-word in '%s'", header);
        ck_assert_msg(end + 2 - p <= 75, "encoded-word of %d characters in '%s'",
                      (int)(end + 2 - p), header);
        size_t len;
        char *bytes = b64_decode(p + 10, (size_t)(end - p - 10), &len);
        ck_assert_msg(bytes != NULL, "bad base64 in '%s'", header);
        ck_assert_msg(utf8_whole((unsigned char *)bytes, len),
                      "an encoded-word splits a UTF-8 character in '%s'", header);
        memcpy(out + o, bytes, len);
        o += len;
        free(bytes);
        p = end + 2;
        if (*p) {
            ck_assert_msg(strncmp(p, "\r\n ", 3) == 0,
                          "expected folding white space between encoded-words at '%s'", p);
            p += 3;
        }
    }
    return out;
}

/* Every line of a header or message (split at CRLF) at most max long. */
static void expect_lines_within(const char *s, size_t max, const char *what)
{
    const char *line = s;
    for (;;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        ck_assert_msg(len <= max, "%s: a line of %zu characters (at most %zu): '%.*s'", what, len,
                      max, (int)len, line);
        if (!end) break;
        line = end + 2;
    }
}

/* Quoted-printable -> bytes (RFC 2045 6.7): "=XX" is a byte, "=" at the end
 * of a line a soft line break. NULL if s is not such. The caller frees. */
static char *qp_decode(const char *s, size_t n)
{
    char *out = calloc(1, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '=') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
            continue;
        }
        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
            !isxdigit((unsigned char)s[i + 2]) || islower((unsigned char)s[i + 1]) ||
            islower((unsigned char)s[i + 2])) {
            free(out);
            return NULL;
        }
        char hex[3] = {s[i + 1], s[i + 2], 0};
        out[o++] = (char)strtol(hex, NULL, 16);
        i += 2;
    }
    return out;
}

/* s with each line ending CRLF, as a body goes out. The caller frees. */
static char *crlf(const char *s)
{
    char *out = calloc(1, strlen(s) * 2 + 1);
    size_t o = 0;
    for (; *s; s++) {
        if (*s == '\n') out[o++] = '\r';
        out[o++] = *s;
    }
    return out;
}

/* A header of a header block (lines up to the blank one), unfolded into
 * "Name: value" with its CRLF kept, or NULL; *count how many there are. */
static char *header_find(const char *block, size_t block_len, const char *name, int *count)
{
    char *found = NULL;
    size_t nlen = strlen(name);
    *count = 0;
    for (const char *line = block; line < block + block_len;) {
        const char *end = strstr(line, "\r\n");
        if (!end || end > block + block_len) end = block + block_len;
        /* the header runs on over continuation lines */
        while (end + 2 < block + block_len && (end[2] == ' ' || end[2] == '\t')) {
            const char *next = strstr(end + 2, "\r\n");
            end = next && next < block + block_len ? next : block + block_len;
        }
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            if (!found) found = strndup(line, (size_t)(end - line));
            (*count)++;
        }
        line = end + 2;
    }
    return found;
}

/* A MIME entity split into its header block and body. */
struct entity {
    const char *headers, *body;
    size_t headers_len, body_len;
};

static struct entity entity_split(const char *s, size_t n)
{
    struct entity e = {0};
    const char *blank = memmem(s, n, "\r\n\r\n", 4);
    ck_assert_msg(blank != NULL, "expected a blank line after the headers of:\n%.*s",
                  (int)(n < 2500 ? n : 2500), s);
    e.headers = s;
    e.headers_len = (size_t)(blank - s) + 2;
    e.body = blank + 4;
    e.body_len = n - (size_t)(e.body - s);
    return e;
}

/* The header's value (after "Name: "), unfolded; must be there exactly once.
 * The caller frees. */
static char *entity_header(const struct entity *e, const char *name)
{
    int count;
    char *h = header_find(e->headers, e->headers_len, name, &count);
    ck_assert_msg(count == 1, "expected one %s header, got %d in:\n%.*s", name, count,
                  (int)e->headers_len, e->headers);
    char *v = header_decode(h, name);
    free(h);
    return v;
}

static void expect_header(const struct entity *e, const char *name, const char *value)
{
    char *got = entity_header(e, name);
    ck_assert_msg(strcmp(got, value) == 0, "%s: expected '%s', got '%s'", name, value, got);
    free(got);
}

/* ---- an SMTP listener ---- */

struct listener {
    int fd, port;
    pid_t child;
    char data_path[128], envelope_path[128];
};

static void say(int fd, const char *reply)
{
    size_t n = strlen(reply);
    if (write(fd, reply, n) != (ssize_t)n) _exit(3);
}

/* The server side of one SMTP session, in the child: every command accepted,
 * MAIL and RCPT lines to envelope_path, the DATA (dot-stuffing undone) to
 * data_path. No extension is offered, so the client sends 7-bit text. */
static void listener_serve(struct listener *l)
{
    alarm(20);
    int fd = accept(l->fd, NULL, NULL);
    FILE *in = fd >= 0 ? fdopen(fd, "r") : NULL;
    FILE *data = fopen(l->data_path, "w"), *envelope = fopen(l->envelope_path, "w");
    if (!in || !data || !envelope) _exit(2);
    say(fd, "220 mail_test ready\r\n");
    char line[8192];
    int in_data = 0;
    while (fgets(line, sizeof(line), in)) {
        if (in_data) {
            if (strcmp(line, ".\r\n") == 0) {
                in_data = 0;
                say(fd, "250 saved\r\n");
            } else {
                fputs(line[0] == '.' ? line + 1 : line, data);
            }
        } else if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
            say(fd, "250 mail_test\r\n");
        } else if (strncasecmp(line, "MAIL", 4) == 0 || strncasecmp(line, "RCPT", 4) == 0) {
            fputs(line, envelope);
            say(fd, "250 ok\r\n");
        } else if (strncasecmp(line, "DATA", 4) == 0) {
            in_data = 1;
            say(fd, "354 go ahead\r\n");
        } else if (strncasecmp(line, "QUIT", 4) == 0) {
            say(fd, "221 bye\r\n");
            break;
        } else {
            say(fd, "250 ok\r\n");
        }
    }
    if (fclose(data) != 0 || fclose(envelope) != 0) _exit(2);
    fclose(in);
    /* _exit: no atexit handlers, no leak report of the parent's heap */
    _exit(0);
}

static struct listener listener_start(const char *name)
{
    struct listener l;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    snprintf(l.data_path, sizeof(l.data_path), "%s/%s.eml", run_dir, name);
    snprintf(l.envelope_path, sizeof(l.envelope_path), "%s/%s.envelope", run_dir, name);
    l.fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l.fd, 0);
    ck_assert_int_eq(bind(l.fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(l.fd, 1), 0);
    ck_assert_int_eq(getsockname(l.fd, (struct sockaddr *)&addr, &len), 0);
    l.port = ntohs(addr.sin_port);
    l.child = fork();
    ck_assert_int_ge(l.child, 0);
    if (l.child == 0) listener_serve(&l);
    close(l.fd);
    return l;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    char *data = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 + 1 > cap) data = realloc(data, cap = (n + 4096 + 1) * 2);
        got = fread(data + n, 1, 4096, f);
        n += got;
    } while (got > 0);
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

/* Sends message through a listener with libcurl; the message as received in
 * *data (*len bytes) and the envelope in *envelope. */
static void send_and_capture(const char *name, const struct mail_message *message, char **data,
                             size_t *len, char **envelope)
{
    struct listener l = listener_start(name);
    char url[64], err[512] = "";
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", l.port);
    struct mail_server server = {.url = url, .starttls = 0, .timeout_ms = 10000};
    struct mail_easy *m = NULL;
    enum sn_err rc = mail_easy_new(&server, message, &m, err, sizeof(err));
    ck_assert_msg(rc == SN_OK, "mail_easy_new: expected SN_OK, got %s: %s", sn_strerror(rc), err);
    CURLcode cc = curl_easy_perform(mail_easy_handle(m));
    ck_assert_msg(cc == CURLE_OK, "curl_easy_perform: %s (%s)", curl_easy_strerror(cc),
                  mail_easy_error(m));
    mail_easy_free(m); /* QUIT */
    int status;
    ck_assert_int_eq(waitpid(l.child, &status, 0), l.child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the listener failed: %d", status);
    size_t envelope_len;
    *data = read_file(l.data_path, len);
    *envelope = read_file(l.envelope_path, &envelope_len);
}

/* ---- tests ---- */

START_TEST(test_fixture_is_a_notice)
{
    json_t *n = notice_with(NULL), *errors = json_array();
    size_t count = schema_validate(schemas, "safety-notice.v1.json", n, "", errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(count == 0, "the test notice: expected no violation, got %s", dump);
    free(dump);
    json_decref(errors);
    json_decref(n);
}
END_TEST

START_TEST(test_render_fields)
{
    json_t *n = notice_with(NULL);
    struct rendered r = render(n, LINK);
    ck_assert_str_eq(
        r.subject, "[ADVISORY] Coordination with law enforcement: 5 reviews from 4 jurisdictions");
    ck_assert_msg(strncmp(r.text, json_string_value(json_object_get(n, "headline")),
                          json_string_length(json_object_get(n, "headline"))) == 0,
                  "expected the text to start with the headline:\n%s", r.text);
    ck_assert_contains(r.text, "\n\nReviews finalized in the last 180 days found coordination "
                               "wanting.\n\n");
    static const char *const fields[][2] = {
        {"Severity", "advisory"},
        {"Status", "issued"},
        {"Revision", "1"},
        {"Rule", "teamwork-law-enforcement"},
        {"Topic", "notices.teamwork_coordination.law_enforcement"},
        {"Group", "theme=teamwork_coordination, partner=law_enforcement"},
        {"Window", "2026-01 to 2026-06 (180 days)"},
        {"Reviews", "5"},
        {"Jurisdictions", "4: US-CA, US-MN, US-TX-201 and 1 not named"},
        {"Improvement opportunities", "6"},
        {"Family needs", "2"},
        {"Reviews by cause", "suid 3, abusive_head_trauma <3"},
        {"Reviews by age band", "0-3 5"},
        {"Reviews by partner agency", "law_enforcement 5"},
        {"Reviews by priority", "high 4, low <3"},
        {"Issued at", "2026-06-01T09:00:00Z"},
        {"Notice", NOTICE_ID},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(fields); i++) {
        expect_text_field(r.text, fields[i][0], fields[i][1]);
        /* the same in the HTML table, a row each */
        char row[512];
        snprintf(row, sizeof(row), ">%s</th><td ", fields[i][0]);
        ck_assert_contains(r.html, row);
    }
    expect_text_field(r.text, "The notice on the dashboard", LINK);
    ck_assert_contains(r.html, "<a href=\"" LINK "\"");
    ck_assert_contains(r.html, "<title>[ADVISORY] Coordination with law enforcement");
    ck_assert_contains(r.html, ">4: US-CA, US-MN, US-TX-201 and 1 not named</td>");
    ck_assert_contains(r.html, ">suid 3, abusive_head_trauma &lt;3</td>");
    ck_assert_contains(r.html, ">2026-01 to 2026-06 (180 days)</td>");
    /* self-contained: nothing fetched, nothing run */
    static const char *const banned[] = {"<script", "<img",   "src=",    "url(",        "<link",
                                         "@import", "<style", "<iframe", "javascript:", "onload="};
    for (size_t i = 0; i < SN_ARRAY_LEN(banned); i++)
        ck_assert_lacks(r.html, banned[i]);
    rendered_free(&r);

    /* no link, no one named, empty group and breakdowns */
    json_decref(n);
    n = notice_with("{\"jurisdictions\": [], \"unnamed_jurisdictions\": 2, \"group\": {},"
                    " \"breakdown\": {\"cause\": {}, \"age_band\": {}, \"partner\": {},"
                    "   \"priority\": {}}}");
    r = render(n, NULL);
    expect_text_field(r.text, "Jurisdictions", "4: 2 not named");
    expect_text_field(r.text, "Reviews by cause", "none");
    ck_assert_lacks(r.text, "\nGroup:");
    ck_assert_lacks(r.text, "dashboard");
    ck_assert_lacks(r.html, "<a ");
    rendered_free(&r);
    json_decref(n);
}
END_TEST

START_TEST(test_render_status_in_subject)
{
    static const struct {
        const char *patch, *subject;
    } cases[] = {
        {"{\"status\": \"escalated\", \"severity\": \"warning\", \"revision\": 2}",
         "[WARNING] Escalated: Coordination"},
        {"{\"status\": \"updated\", \"severity\": \"critical\", \"revision\": 3}",
         "[CRITICAL] Updated: Coordination"},
        {"{\"status\": \"resolved\", \"severity\": \"watch\", \"revision\": 4}",
         "[WATCH] Resolved: Coordination"},
        /* one line whatever the headline holds */
        {"{\"headline\": \"Two\\nlines\\r\\tand a tab\"}", "[ADVISORY] Two lines  and a tab"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        json_t *n = notice_with(cases[i].patch);
        struct rendered r = render(n, NULL);
        ck_assert_msg(strncmp(r.subject, cases[i].subject, strlen(cases[i].subject)) == 0,
                      "case %zu: expected a subject starting '%s', got '%s'", i, cases[i].subject,
                      r.subject);
        ck_assert_msg(strcspn(r.subject, "\r\n\t") == strlen(r.subject),
                      "case %zu: a control character in the subject '%s'", i, r.subject);
        rendered_free(&r);
        json_decref(n);
    }
}
END_TEST

START_TEST(test_render_escaping)
{
    json_t *n =
        notice_with("{\"headline\": \"<script>alert(\\\"x\\\")&'</script>\","
                    " \"summary\": \"a < b && c > d\","
                    " \"group\": {\"theme\": \"\\\"><img src=x onerror=alert(1)>\"},"
                    " \"breakdown\": {\"cause\": {\"<b>\": 3}, \"age_band\": {}, \"partner\": {},"
                    "   \"priority\": {}}}");
    const char *link = "https://dash.example/n?a=1&b=\"><script>";
    struct rendered r = render(n, link);
    const char *escaped = "&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;&lt;/script&gt;";
    char expect[256];
    snprintf(expect, sizeof(expect), "<title>[ADVISORY] %s</title>", escaped);
    ck_assert_contains(r.html, expect);
    snprintf(expect, sizeof(expect), ">%s</h1>", escaped);
    ck_assert_contains(r.html, expect);
    ck_assert_contains(r.html, ">a &lt; b &amp;&amp; c &gt; d</p>");
    ck_assert_contains(r.html, ">theme=&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</td>");
    ck_assert_contains(r.html, ">&lt;b&gt; 3</td>");
    ck_assert_contains(r.html,
                       "href=\"https://dash.example/n?a=1&amp;b=&quot;&gt;&lt;script&gt;\"");
    ck_assert_lacks(r.html, "<script");
    ck_assert_lacks(r.html, "<img");
    ck_assert_lacks(r.html, "<b>");
    /* the text part is text: no references there */
    ck_assert_contains(r.text, "<script>alert(\"x\")&'</script>\n");
    ck_assert_str_eq(r.subject, "[ADVISORY] <script>alert(\"x\")&'</script>");
    rendered_free(&r);
    json_decref(n);
}
END_TEST

/* Nothing but the schema's members is read: a review id or a narrative that
 * reached a notice object by mistake does not reach a recipient. */
START_TEST(test_render_only_schema_members)
{
    json_t *n = notice_with("{\"review_id\": \"R-2026-SECRET\","
                            " \"opportunities\": [{\"summary\": \"NARRATIVE-SECRET\"}],"
                            " \"finalized_at\": \"2026-03-14T08:00:00Z\"}");
    struct rendered r = render(n, NULL);
    const char *secrets[] = {"SECRET", "2026-03-14", "08:00"};
    for (size_t i = 0; i < SN_ARRAY_LEN(secrets); i++) {
        ck_assert_lacks(r.subject, secrets[i]);
        ck_assert_lacks(r.text, secrets[i]);
        ck_assert_lacks(r.html, secrets[i]);
    }
    rendered_free(&r);
    json_decref(n);
}
END_TEST

START_TEST(test_render_refusals)
{
    static const struct {
        const char *patch, *link, *err;
    } cases[] = {
        {"{\"headline\": null}", NULL, "\"headline\""},
        {"{\"counts\": {\"reviews\": 5}}", NULL, "\"jurisdictions\""},
        {"{\"revision\": -1}", NULL, "\"revision\""},
        {"{\"severity\": \"severe\"}", NULL, "severity \"severe\""},
        {"{\"status\": \"fired\"}", NULL, "status \"fired\""},
        /* never a date finer than a month */
        {"{\"window\": {\"from\": \"2026-01-15\", \"to\": \"2026-06\", \"length\": \"1 day\"}}",
         NULL, "months"},
        {"{\"window\": {\"from\": \"2026-13\", \"to\": \"2026-06\", \"length\": \"1 day\"}}", NULL,
         "months"},
        {"{\"breakdown\": {\"cause\": {\"suid\": 0}, \"age_band\": {}, \"partner\": {},"
         " \"priority\": {}}}",
         NULL, "breakdown.cause.suid"},
        {"{\"breakdown\": {\"cause\": {}, \"age_band\": {}, \"partner\": {}}}", NULL,
         "\"priority\""},
        {"{\"jurisdictions\": [\"US-CA\", 7]}", NULL, "jurisdictions[1]"},
        {NULL, "javascript:alert(1)", "http"},
        {NULL, "https://dash.example/a b", "http"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        json_t *n = notice_with(cases[i].patch);
        char err[512] = "", *subject = (char *)1, *text = (char *)1, *html = (char *)1;
        enum sn_err rc =
            mail_render_notice(n, cases[i].link, &subject, &text, &html, err, sizeof(err));
        ck_assert_msg(rc == SN_ERR_INVAL, "case %zu: expected SN_ERR_INVAL, got %s", i,
                      sn_strerror(rc));
        ck_assert_msg(strstr(err, cases[i].err) != NULL, "case %zu: expected '%s' in err '%s'", i,
                      cases[i].err, err);
        ck_assert_msg(!subject && !text && !html, "case %zu: outputs not NULL on failure", i);
        json_decref(n);
    }
}
END_TEST

START_TEST(test_message_id)
{
    char err[256] = "", *id = NULL;
    ck_assert_int_eq(mail_message_id(NOTICE_ID, 3, "npcs.example", &id, err, sizeof(err)), SN_OK);
    ck_assert_str_eq(id, "<" NOTICE_ID ".r3@npcs.example>");
    free(id);
    static const struct {
        const char *notice_id, *domain;
        json_int_t revision;
    } bad[] = {
        {NOTICE_ID, "npcs example", 1},
        {NOTICE_ID, "npcs.example>", 1},
        {NOTICE_ID, "", 1},
        {NOTICE_ID, ".example", 1},
        {"sn-a@b", "npcs.example", 1},
        {"", "npcs.example", 1},
        {NOTICE_ID, "npcs.example", 0},
        {NOTICE_ID, NULL, 1},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        id = (char *)1;
        ck_assert_msg(mail_message_id(bad[i].notice_id, bad[i].revision, bad[i].domain, &id, err,
                                      sizeof(err)) == SN_ERR_INVAL,
                      "case %zu: expected SN_ERR_INVAL", i);
        ck_assert_msg(id == NULL, "case %zu: expected *out NULL", i);
    }
}
END_TEST

START_TEST(test_header_encode)
{
    /* plain and short: as it is */
    char *h = mail_header_encode("Subject", "[WATCH] Five reviews");
    ck_assert_str_eq(h, "Subject: [WATCH] Five reviews");
    free(h);

    /* plain and long: folded at spaces, unfolding gives it back */
    const char *long_ascii =
        "[WARNING] Coordination with law enforcement wanting: 11 reviews from 4 jurisdictions "
        "in 180 days, across three states and one tribal nation, with more to come";
    h = mail_header_encode("Subject", long_ascii);
    ck_assert_contains(h, "\r\n ");
    expect_lines_within(h, 78, "folded ASCII subject");
    char *back = header_decode(h, "Subject");
    ck_assert_str_eq(back, long_ascii);
    free(back);
    free(h);

    /* not ASCII: encoded-words of whole characters, decoded back; "=?" in
     * ASCII text would read as one, so it is encoded too */
    static const char *const encoded[] = {
        "[WARNING] Coordinación con la policía: 11 revisiones — Nación Diné ✓",
        "\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F"
        "\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8"
        "\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8\xF0\x9F\x9A\xB8",
        "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
        "an =?UTF-8?B?Zm9v?= lookalike",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(encoded); i++) {
        h = mail_header_encode("Subject", encoded[i]);
        ck_assert_msg(strncmp(h, "Subject: =?UTF-8?B?", 19) == 0,
                      "case %zu: expected an encoded-word, got '%s'", i, h);
        expect_lines_within(h, 76, "encoded subject");
        for (const unsigned char *p = (const unsigned char *)h; *p; p++)
            ck_assert_msg(*p < 0x80, "case %zu: a byte 0x%02X in the header '%s'", i, *p, h);
        back = header_decode(h, "Subject");
        ck_assert_msg(strcmp(back, encoded[i]) == 0, "case %zu: expected '%s' back, got '%s'", i,
                      encoded[i], back);
        free(back);
        free(h);
    }

    /* no header injection: CR and LF are spaces, whatever the encoding */
    h = mail_header_encode("Subject", "x\r\nBcc: all@example.org");
    ck_assert_str_eq(h, "Subject: x  Bcc: all@example.org");
    free(h);
    h = mail_header_encode("Subject", "é\r\nBcc: all@example.org");
    back = header_decode(h, "Subject");
    ck_assert_str_eq(back, "é  Bcc: all@example.org");
    free(back);
    free(h);
}
END_TEST

/* The whole message as libcurl sends it, taken apart. */
START_TEST(test_message_over_smtp)
{
    json_t *n = notice_with(
        "{\"headline\": \"Coordinación — Nación Diné: <5> reviews & more\","
        " \"summary\": \"First line, and a line with only a dot:\\n.\\nÉquipe: handoffs "
        "broke down. A long line that the quoted-printable encoding has to break softly "
        "because it is longer than seventy-six characters.\"}");
    struct rendered r = render(n, LINK);
    char err[256], *message_id = NULL;
    ck_assert_int_eq(mail_message_id(NOTICE_ID, 2, "npcs.example", &message_id, err, sizeof(err)),
                     SN_OK);
    struct mail_message message = {
        .from = FROM,
        .to = TO,
        .subject = r.subject,
        .text = r.text,
        .html = r.html,
        .message_id = message_id,
        .in_reply_to = "<" NOTICE_ID ".r1@npcs.example>",
        .date = 1780304400, /* 2026-06-01T09:00:00Z, a Monday */
    };
    char *data, *envelope;
    size_t len;
    send_and_capture("alternative", &message, &data, &len, &envelope);

    ck_assert_str_eq(envelope, "MAIL FROM:<" FROM ">\r\nRCPT TO:<" TO ">\r\n");
    for (size_t i = 0; i < len; i++)
        ck_assert_msg((unsigned char)data[i] < 0x80 && data[i] != '\0',
                      "byte %zu of the message is 0x%02X: not 7-bit text", i,
                      (unsigned char)data[i]);

    struct entity top = entity_split(data, len);
    expect_header(&top, "Date", "Mon, 01 Jun 2026 09:00:00 +0000");
    expect_header(&top, "From", FROM);
    expect_header(&top, "To", TO);
    expect_header(&top, "Subject", r.subject);
    expect_header(&top, "Message-ID", "<" NOTICE_ID ".r2@npcs.example>");
    expect_header(&top, "In-Reply-To", "<" NOTICE_ID ".r1@npcs.example>");
    expect_header(&top, "References", "<" NOTICE_ID ".r1@npcs.example>");
    expect_header(&top, "MIME-Version", "1.0");
    expect_header(&top, "Auto-Submitted", "auto-generated");

    /* the top is multipart/alternative (one Content-Type, with a boundary) */
    char *type = entity_header(&top, "Content-Type");
    const char *prefix = "multipart/alternative; boundary=";
    ck_assert_msg(strncmp(type, prefix, strlen(prefix)) == 0,
                  "expected Content-Type %s..., got '%s'", prefix, type);
    char delimiter[128];
    snprintf(delimiter, sizeof(delimiter), "--%s", type + strlen(prefix));
    free(type);

    /* exactly two parts, text first (RFC 2046: the preferred one last) */
    struct {
        const char *type, *expected;
    } parts[] = {{"text/plain; charset=utf-8", r.text}, {"text/html; charset=utf-8", r.html}};
    const char *p = strstr(top.body, delimiter);
    ck_assert_msg(p != NULL, "no delimiter '%s' in the body:\n%.2500s", delimiter, top.body);
    for (size_t i = 0; i < SN_ARRAY_LEN(parts); i++) {
        p += strlen(delimiter);
        ck_assert_msg(strncmp(p, "\r\n", 2) == 0, "part %zu: expected CRLF after the delimiter", i);
        p += 2;
        char close[140];
        snprintf(close, sizeof(close), "\r\n%s", delimiter);
        const char *end = strstr(p, close);
        ck_assert_msg(end != NULL, "part %zu is not closed", i);
        struct entity part = entity_split(p, (size_t)(end - p));
        expect_header(&part, "Content-Type", parts[i].type);
        expect_header(&part, "Content-Transfer-Encoding", "quoted-printable");
        char *raw = strndup(part.body, part.body_len);
        expect_lines_within(raw, 76, "a quoted-printable body");
        char *decoded = qp_decode(part.body, part.body_len), *expected = crlf(parts[i].expected);
        ck_assert_msg(decoded != NULL, "part %zu is not quoted-printable:\n%s", i, raw);
        size_t at;
        for (at = 0; decoded[at] && decoded[at] == expected[at]; at++)
            ;
        ck_assert_msg(decoded[at] == expected[at],
                      "part %zu: expected the body rendered; from byte %zu expected:\n%.300s\n"
                      "got:\n%.300s",
                      i, at, expected + at, decoded + at);
        /* non-ASCII went as UTF-8 bytes, each =XX (soft line breaks aside) */
        char *unbroken = strdup(raw), *w = unbroken;
        for (const char *q = raw; *q; q++) {
            if (strncmp(q, "=\r\n", 3) == 0)
                q += 2;
            else
                *w++ = *q;
        }
        *w = '\0';
        ck_assert_contains(unbroken, "Coordinaci=C3=B3n =E2=80=94 Naci=C3=B3n Din=C3=A9");
        free(unbroken);
        free(decoded);
        free(expected);
        free(raw);
        p = end + 2;
    }
    ck_assert_msg(strncmp(p + strlen(delimiter), "--", 2) == 0,
                  "expected the closing delimiter after two parts, got:\n%.2500s", p);
    ck_assert_contains(r.text, "\n.\n"); /* and it came through: the bodies are equal */

    free(data);
    free(envelope);
    free(message_id);
    rendered_free(&r);
    json_decref(n);
}
END_TEST

START_TEST(test_easy_refusals)
{
    struct mail_message good = {
        .from = FROM,
        .to = TO,
        .subject = "s",
        .text = "t",
        .html = "<p>h</p>",
        .message_id = "<" NOTICE_ID ".r1@npcs.example>",
    };
    static const struct {
        const char *url;
        int starttls;
        const char *from, *to, *message_id, *in_reply_to, *err;
    } cases[] = {
        {"smtp://mail.example.org:25", 0, NULL, NULL, NULL, NULL, "plain-text"},
        {"smtp://10.0.0.5", 0, NULL, NULL, NULL, NULL, "plain-text"},
        {"http://mail.example.org", 1, NULL, NULL, NULL, NULL, "smtp://"},
        {"smtp://[::1", 1, NULL, NULL, NULL, NULL, "not one"},
        {NULL, 1, NULL, "safety@county.example\r\nBcc: x@y.z", NULL, NULL, "recipient"},
        {NULL, 1, NULL, "<safety@county.example>", NULL, NULL, "recipient"},
        {NULL, 1, "notices", NULL, NULL, NULL, "sender"},
        {NULL, 1, "a b@example.org", NULL, NULL, NULL, "sender"},
        {NULL, 1, NULL, NULL, NOTICE_ID "@npcs.example", NULL, "Message-ID"},
        {NULL, 1, NULL, NULL, "<a@b>\r\nX: y", NULL, "Message-ID"},
        {NULL, 1, NULL, NULL, NULL, "<no-at>", "In-Reply-To"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        struct mail_server server = {.url = cases[i].url ? cases[i].url : "smtp://mail.example.org",
                                     .starttls = cases[i].starttls};
        struct mail_message m = good;
        if (cases[i].from) m.from = cases[i].from;
        if (cases[i].to) m.to = cases[i].to;
        if (cases[i].message_id) m.message_id = cases[i].message_id;
        if (cases[i].in_reply_to) m.in_reply_to = cases[i].in_reply_to;
        struct mail_easy *e = (struct mail_easy *)1;
        char err[512] = "";
        enum sn_err rc = mail_easy_new(&server, &m, &e, err, sizeof(err));
        ck_assert_msg(rc == SN_ERR_INVAL, "case %zu: expected SN_ERR_INVAL, got %s", i,
                      sn_strerror(rc));
        ck_assert_msg(e == NULL, "case %zu: expected *out NULL", i);
        ck_assert_msg(strstr(err, cases[i].err) != NULL, "case %zu: expected '%s' in err '%s'", i,
                      cases[i].err, err);
    }

    /* plain text on loopback, TLS anywhere: accepted (nothing is sent) */
    static const struct {
        const char *url;
        int starttls;
    } fine[] = {
        {"smtp://127.0.0.1:2525", 0},
        {"smtp://localhost", 0},
        {"smtp://[::1]:25", 0},
        {"smtp://mail.example.org", 1},
        {"smtps://mail.example.org:465", 0},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(fine); i++) {
        struct mail_server server = {.url = fine[i].url,
                                     .starttls = fine[i].starttls,
                                     .username = "broker",
                                     .password = "secret",
                                     .ca_file = "/etc/ssl/certs/ca-certificates.crt",
                                     .timeout_ms = 5000};
        struct mail_easy *e = NULL;
        char err[512] = "";
        enum sn_err rc = mail_easy_new(&server, &good, &e, err, sizeof(err));
        ck_assert_msg(rc == SN_OK, "%s: expected SN_OK, got %s: %s", fine[i].url, sn_strerror(rc),
                      err);
        ck_assert_ptr_nonnull(mail_easy_handle(e));
        ck_assert_str_eq(mail_easy_error(e), "");
        mail_easy_free(e);
    }
    mail_easy_free(NULL);
}
END_TEST

/* A refused connection comes back as libcurl's error, in its own words too. */
START_TEST(test_easy_error_text)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd); /* nothing listens there now */
    char url[64], err[256];
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", ntohs(addr.sin_port));
    struct mail_server server = {.url = url, .timeout_ms = 5000};
    struct mail_message m = {
        .from = FROM, .to = TO, .subject = "s", .text = "t", .html = "h", .message_id = "<a@b>"};
    struct mail_easy *e = NULL;
    ck_assert_int_eq(mail_easy_new(&server, &m, &e, err, sizeof(err)), SN_OK);
    CURLcode cc = curl_easy_perform(mail_easy_handle(e));
    ck_assert_msg(cc == CURLE_COULDNT_CONNECT, "expected CURLE_COULDNT_CONNECT, got %s",
                  curl_easy_strerror(cc));
    ck_assert_msg(mail_easy_error(e)[0] != '\0', "expected libcurl's words on the failure");
    mail_easy_free(e);
}
END_TEST

static Suite *mail_suite(void)
{
    Suite *s = suite_create("mail");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_fixture_is_a_notice);
    tcase_add_test(tc, test_render_fields);
    tcase_add_test(tc, test_render_status_in_subject);
    tcase_add_test(tc, test_render_escaping);
    tcase_add_test(tc, test_render_only_schema_members);
    tcase_add_test(tc, test_render_refusals);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_test(tc, test_message_id);
    tcase_add_test(tc, test_header_encode);
    suite_add_tcase(s, tc);

    tc = tcase_create("smtp");
    tcase_add_test(tc, test_message_over_smtp);
    tcase_add_test(tc, test_easy_refusals);
    tcase_add_test(tc, test_easy_error_text);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* a zone other than UTC, without tzdata: the Date header must not follow it */
    setenv("TZ", "SNT+5", 1);
    tzset();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return EXIT_FAILURE;
    }
    int rc = test_main_with_schemas(mail_suite(), "mail", &schemas, run_dir, NULL);
    curl_global_cleanup();
    return rc;
}
