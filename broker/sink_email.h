/* Email: one message per recipient (a subscription's address) through
 * libcurl's SMTP on the loop, STARTTLS or implicit TLS, AUTH from config. */
#ifndef SN_SINK_EMAIL_H
#define SN_SINK_EMAIL_H

#include "curl_loop.h"
#include "mail.h"
#include "sink.h"

/* server and from are copied; loop must outlive the sink. */
struct sink *sink_email_new(struct curl_loop *loop, const struct mail_server *server,
                            const char *from);

#endif
