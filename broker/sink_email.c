#include "sink_email.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sn.h"

struct sink_email {
    struct sink base;
    struct curl_loop *loop;
    struct mail_server server;
    char *url, *username, *password, *ca_file, *from;
    const char *domain; /* of from: the right side of Message-IDs */
};

struct attempt {
    struct sink_email *s;
    struct delivery *d;
    struct mail_easy *mail;
};

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    struct attempt *at = arg;
    struct delivery *d = at->d;
    long code = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) code = 0;
    d->status_code = (int)code;
    if (result != CURLE_OK) {
        snprintf(d->error, sizeof(d->error), "smtp: %s", mail_easy_error(at->mail));
        /* the server refused the mailbox itself: retrying cannot help */
        d->permanent = code >= 550 && code <= 553;
    }
    mail_easy_free(at->mail);
    struct sink *base = &at->s->base;
    free(at);
    base->done(d, result == CURLE_OK, base->done_arg);
}

static void email_send(struct sink *base, struct delivery *d)
{
    struct sink_email *s = (struct sink_email *)base;
    d->error[0] = '\0';
    d->status_code = 0;
    d->permanent = d->gone = 0;
    d->retry_after_ms = -1;
    char err[256] = "";
    char *subject = NULL, *text = NULL, *html = NULL, *id = NULL, *first = NULL;
    struct mail_easy *mail = NULL;
    if (d->kind == DELIVERY_DIGEST) {
        /* rendered when the digest was stored; one Message-ID per digest */
        const char *parts[] = {"subject", "text", "html"};
        char **out[] = {&subject, &text, &html};
        for (size_t i = 0; i < SN_ARRAY_LEN(parts); i++) {
            const char *v = json_string_value(json_object_get(d->notice, parts[i]));
            if (v) *out[i] = xstrdup(v);
        }
        if (!subject || !text || !html)
            snprintf(err, sizeof(err), "the digest has no message to send");
        else if (mail_message_id(d->notice_id, 1, s->domain, &id, err, sizeof(err)) == SN_OK) {
            const struct mail_message msg = {s->from, d->target, subject, text, html, id, NULL, 0};
            mail_easy_new(&s->server, &msg, &mail, err, sizeof(err));
        }
    } else if (mail_render_notice(d->notice, NULL, &subject, &text, &html, err, sizeof(err)) ==
                   SN_OK &&
               mail_message_id(d->notice_id, d->revision, s->domain, &id, err, sizeof(err)) ==
                   SN_OK &&
               (d->revision <= 1 ||
                mail_message_id(d->notice_id, 1, s->domain, &first, err, sizeof(err)) == SN_OK)) {
        /* later revisions follow the first, so mail clients thread them */
        const struct mail_message msg = {s->from, d->target, subject, text, html, id, first, 0};
        mail_easy_new(&s->server, &msg, &mail, err, sizeof(err));
    }
    free(subject);
    free(text);
    free(html);
    free(id);
    free(first);
    struct attempt *at = xcalloc(1, sizeof(*at));
    at->s = s;
    at->d = d;
    at->mail = mail;
    if (!mail || curl_loop_add(s->loop, mail_easy_handle(mail), on_done, at) != SN_OK) {
        snprintf(d->error, sizeof(d->error), "email not sent: %s",
                 err[0] ? err : "libcurl refused the transfer");
        d->permanent = mail == NULL; /* the notice or address cannot make a message */
        mail_easy_free(mail);
        free(at);
        sink_fail_soon(base, d);
    }
}

static int email_ready(const struct sink *s)
{
    (void)s;
    return 1;
}

static void email_free(struct sink *base)
{
    struct sink_email *s = (struct sink_email *)base;
    free(s->url);
    free(s->username);
    if (s->password) explicit_bzero(s->password, strlen(s->password));
    free(s->password);
    free(s->ca_file);
    free(s->from);
    free(s);
}

static const struct sink_ops email_ops = {"email", email_send, email_ready, email_free};

static char *dup_or_null(const char *s)
{
    return s && s[0] ? xstrdup(s) : NULL;
}

struct sink *sink_email_new(struct curl_loop *loop, const struct mail_server *server,
                            const char *from)
{
    struct sink_email *s = xcalloc(1, sizeof(*s));
    s->base.ops = &email_ops;
    s->loop = loop;
    s->server = *server;
    s->server.url = s->url = xstrdup(server->url);
    s->server.username = s->username = dup_or_null(server->username);
    s->server.password = s->password = dup_or_null(server->password);
    s->server.ca_file = s->ca_file = dup_or_null(server->ca_file);
    s->from = xstrdup(from);
    const char *at = strrchr(s->from, '@');
    s->domain = at && at[1] ? at + 1 : "sn-broker.invalid";
    return &s->base;
}
