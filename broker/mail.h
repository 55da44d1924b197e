/* Email to one subscriber: a notice revision rendered as a subject, a text
 * and an HTML body, and the message itself as a libcurl easy handle set up
 * for SMTP with a multipart/alternative MIME body, which the caller runs on
 * the loop (curl_loop.h). Nothing here performs a transfer. */
#ifndef SN_MAIL_H
#define SN_MAIL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "sn.h"

struct mail_server {
    const char *url; /* smtp://host[:port] or smtps://host[:port] */
    /* NULL username: no AUTH. libcurl picks the mechanism (PLAIN, LOGIN...). */
    const char *username, *password;
    const char *ca_file; /* PEM file to verify the server against; NULL: the system store */
    /* smtp:// only: 1 requires STARTTLS (CURLUSESSL_ALL, no fallback to plain
     * text); 0 speaks plain text, and is refused unless the host is loopback. */
    int starttls;
    long timeout_ms; /* the whole SMTP session; 0: no limit */
};

struct mail_message {
    const char *from, *to; /* bare addresses, local@domain */
    const char *subject;   /* UTF-8, one line; encoded and folded here */
    /* UTF-8 bodies; lines may end in "\n" or "\r\n" (sent as CRLF). */
    const char *text, *html;
    const char *message_id;  /* "<left@right>", see mail_message_id() */
    const char *in_reply_to; /* NULL, or the Message-ID this message follows */
    time_t date;             /* the Date header; 0: now */
};

/* An easy handle set up to send one message, and what must outlive it. */
/* Checks the server settings mail_easy_new() would refuse (URL, scheme,
 * plain text off loopback), so that a bad configuration stops the start. */
enum sn_err mail_server_check(const struct mail_server *s, char *err, size_t errlen);

struct mail_easy;

/* Builds the message and a configured easy handle for it (URL, envelope,
 * headers, MIME body, TLS, AUTH, timeout); the caller runs it, e.g. with
 * curl_loop_add(), and frees it with mail_easy_free(). On SN_OK *out is new;
 * else SN_ERR_INVAL (a bad address, header value or server setting) or
 * SN_ERR_CONF (libcurl refused an option), with a sentence in err. */
enum sn_err mail_easy_new(const struct mail_server *server, const struct mail_message *message,
                          struct mail_easy **out, char *err, size_t errlen);
/* The handle, owned by m: the caller never curl_easy_cleanup()s it. */
CURL *mail_easy_handle(struct mail_easy *m);
/* libcurl's own words on the last failure of the transfer ("" if none). */
const char *mail_easy_error(const struct mail_easy *m);
/* Cleans up the handle (which must no longer be in a multi handle), the MIME
 * body and the lists. NULL is fine. */
void mail_easy_free(struct mail_easy *m);

/* Renders a notice revision (schemas/safety-notice.v1.json) for mail: a
 * subject "[SEVERITY] headline" (with the status before the headline from
 * revision 2 on), a text and an HTML body naming what the notice says. link,
 * the notice on the dashboard (http:// or https://), may be NULL. Only the
 * schema's members are read: nothing else a notice object might carry ends
 * up in a message. On SN_OK the three strings are new (the caller frees);
 * else SN_ERR_INVAL with a sentence in err and the three left NULL. */
enum sn_err mail_render_notice(const json_t *notice, const char *link, char **subject, char **text,
                               char **html, char *err, size_t errlen);

/* "<notice_id.rREVISION@domain>": one Message-ID per revision, the same for
 * every recipient and every retry. On SN_OK *out is new (the caller frees);
 * SN_ERR_INVAL when notice_id or domain cannot be part of one. */
enum sn_err mail_message_id(const char *notice_id, json_int_t revision, const char *domain,
                            char **out, char *err, size_t errlen);

/* "Name: value" as an unstructured header (RFC 5322 2.2.3) without the final
 * CRLF: printable ASCII folded at spaces to 78 columns, anything else as
 * RFC 2047 UTF-8 base64 encoded-words, lines of at most 76 columns. Control
 * characters become spaces. The caller frees. (Exposed for tests.) */
char *mail_header_encode(const char *name, const char *value);

#endif
