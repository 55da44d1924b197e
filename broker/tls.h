/* TLS of the HTTP listener: the server context (certificate and key from
 * files, TLS 1.2 and 1.3 only, client certificates verified against a CA when
 * one is given), and the subject of a client's verified certificate as
 * OpenSSL prints it in RFC 2253 form, which is what tls.client_map names. */
#ifndef SN_TLS_H
#define SN_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct tls_options {
    const char *cert_file;      /* PEM chain: the server's certificate first */
    const char *key_file;       /* PEM */
    const char *client_ca_file; /* NULL or "": no client certificate is asked for */
    int client_cert_required;   /* with client_ca_file: no handshake without one */
};

/* A server context for o; NULL with a message naming the file and what is
 * wrong in err. The caller frees it with SSL_CTX_free. */
SSL_CTX *tls_server_ctx_new(const struct tls_options *o, char *err, size_t errlen);

/* name in RFC 2253 form ("CN=TN Case System,O=Tennessee DCS,C=US"); the
 * caller frees. */
char *tls_name_rfc2253(const X509_NAME *name);

/* The subject of the certificate ssl's peer presented, once verified; NULL
 * when it presented none. The caller frees. */
char *tls_peer_subject(const SSL *ssl);

#endif
