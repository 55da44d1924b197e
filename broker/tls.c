#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sn.h"

/* TLS 1.2 suites with forward secrecy and an AEAD only; TLS 1.3's are all
 * of that kind and keep OpenSSL's defaults. */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* what the last OpenSSL error says, after prefix */
static void openssl_errf(char *err, size_t errlen, const char *prefix, const char *file)
{
    unsigned long code = ERR_peek_last_error();
    char why[256] = "unknown OpenSSL error";
    if (code) ERR_error_string_n(code, why, sizeof(why));
    ERR_clear_error();
    sn_errf(err, errlen, "%s %s: %s", prefix, file, why);
}

static int readable(const char *key, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        sn_errf(err, errlen, "%s %s: cannot open: %s", key, file, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

/* Logs why a client certificate was refused (the client only sees an alert). */
static int on_verify(int preverify_ok, X509_STORE_CTX *store)
{
    if (preverify_ok) return 1;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    char *subject = cert ? tls_name_rfc2253(X509_get_subject_name(cert)) : NULL;
    log_info(json_pack("{s:s,s:s,s:i}", "subject", subject ? subject : "", "reason",
                       X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)), "depth",
                       X509_STORE_CTX_get_error_depth(store)),
             "client certificate refused");
    free(subject);
    return 0;
}

SSL_CTX *tls_server_ctx_new(const struct tls_options *o, char *err, size_t errlen)
{
    if (!readable("tls.cert_file", o->cert_file, err, errlen) ||
        !readable("tls.key_file", o->key_file, err, errlen))
        return NULL;
    int verify_clients = o->client_ca_file && o->client_ca_file[0];
    if (verify_clients && !readable("tls.client_ca_file", o->client_ca_file, err, errlen))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_errf(err, errlen, "cannot create a TLS context", "");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        openssl_errf(err, errlen, "cannot set the TLS versions and ciphers", "");
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* a client may not make the server renegotiate (CPU for nothing) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        openssl_errf(err, errlen, "tls.cert_file", o->cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        openssl_errf(err, errlen,
                     mismatch ? "tls.key_file does not match tls.cert_file:" : "tls.key_file",
                     o->key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (verify_clients) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, o->client_ca_file, NULL) != 1) {
            if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
            openssl_errf(err, errlen, "tls.client_ca_file", o->client_ca_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* ctx owns names */
        SSL_CTX_set_verify(
            ctx, SSL_VERIFY_PEER | (o->client_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            on_verify);
        /* sessions resumed with a client certificate need one */
        static const unsigned char sid[] = "sn-broker";
        if (SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1) != 1) {
            openssl_errf(err, errlen, "cannot set the session id context", "");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

char *tls_name_rfc2253(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) sn_oom(0);
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
        BIO_free(bio);
        ERR_clear_error();
        return xstrdup("");
    }
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *text = xstrndup(data, len > 0 ? (size_t)len : 0);
    BIO_free(bio);
    return text;
}

char *tls_peer_subject(const SSL *ssl)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return NULL;
    return tls_name_rfc2253(X509_get_subject_name(cert));
}
