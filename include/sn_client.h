/* What the command-line clients (snctl, sn-emit) share: collecting an HTTP
 * reply with libcurl and reading a token file. */
#ifndef SN_CLIENT_H
#define SN_CLIENT_H

#include <curl/curl.h>
#include <getopt.h>
#include <stddef.h>

struct client_reply {
    long status;
    char *body; /* NUL-terminated; the caller frees */
    size_t len;
    char retry_after[32];
};

/* CURLOPT_WRITEFUNCTION that appends to a struct client_reply. */
size_t client_on_body(char *data, size_t size, size_t n, void *arg);
/* CURLOPT_HEADERFUNCTION that keeps Retry-After in a struct client_reply. */
size_t client_on_header(char *data, size_t size, size_t n, void *arg);
/* A libcurl handle with what every request of a client shares: for a broker
 * behind TLS, the CA to verify it against (SN_CACERT) and the client
 * certificate and key for mTLS (SN_CLIENT_CERT, SN_CLIENT_KEY). Aborts when
 * libcurl cannot make a handle. */
CURL *client_easy_new(const char *user_agent);
/* Handles --cacert, --cert and --key (option letters 'C', 'E', 'K'): they
 * set the variables client_easy_new() reads. Returns 1 when opt was one. */
int client_tls_option(int opt, const char *arg);
#define CLIENT_TLS_OPTIONS                                                                         \
    {"cacert", required_argument, NULL, 'C'}, {"cert", required_argument, NULL, 'E'},              \
    {                                                                                              \
        "key", required_argument, NULL, 'K'                                                        \
    }
#define CLIENT_TLS_HELP                                                                            \
    "  --cacert FILE      CA certificates to verify an https:// broker (env SN_CACERT)\n"          \
    "  --cert FILE        client certificate for mTLS (env SN_CLIENT_CERT)\n"                      \
    "  --key FILE         its private key (env SN_CLIENT_KEY)\n"

/* The first line of path, or NULL (a message naming prog and path printed);
 * the caller frees. */
char *client_read_token_file(const char *prog, const char *path);

#endif
