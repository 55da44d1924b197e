/* tls: the server context (TLS 1.2 at least, client certificates asked for
 * or required, each file's error named), subjects in RFC 2253 form as the
 * openssl CLI prints them, and the client certificate map of auth
 * (tls.client_map): its parser, its errors and its lookups. Keys and
 * certificates are made here (P-256, in a scratch directory). */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "metrics.h"
#include "tls.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in '%s'", (needle),         \
                  (haystack))

static char dir[64];
static char cert_path[128], key_path[128], other_key_path[128], ca_path[128], junk_path[128];

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(key);
    return key;
}

/* rdns: field, value, field, value, ..., NULL (the order of the DN as
 * written, most significant first). */
static X509 *new_cert(EVP_PKEY *key, const char *const *rdns)
{
    static long serial = 1;
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(X509_set_version(x, 2), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -60));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    ck_assert_int_eq(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    for (int i = 0; rdns[i]; i += 2)
        ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, rdns[i], MBSTRING_UTF8,
                                                    (const unsigned char *)rdns[i + 1], -1, -1, 0),
                         1);
    ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
    ck_assert_int_ne(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

static void write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

static const char *const server_rdns[] = {"CN", "localhost", NULL};

static void files_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sn-tls-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_path, sizeof(cert_path), "%s/server.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/server.key", dir);
    snprintf(other_key_path, sizeof(other_key_path), "%s/other.key", dir);
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
    snprintf(junk_path, sizeof(junk_path), "%s/junk.pem", dir);
    EVP_PKEY *key = new_key(), *other = new_key(), *ca_key = new_key();
    X509 *cert = new_cert(key, server_rdns);
    static const char *const ca_rdns[] = {"CN", "sn-test-ca", NULL};
    X509 *ca = new_cert(ca_key, ca_rdns);
    write_cert(cert_path, cert);
    write_key(key_path, key);
    write_key(other_key_path, other);
    write_cert(ca_path, ca);
    write_text(junk_path, "not a certificate\n", 18);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(ca_key);
}

static void files_teardown(void)
{
    const char *const files[] = {cert_path, key_path, other_key_path, ca_path, junk_path};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
}

START_TEST(test_ctx_tls12_and_up)
{
    char err[512] = "";
    const struct tls_options o = {cert_path, key_path, NULL, 0};
    SSL_CTX *ctx = tls_server_ctx_new(&o, err, sizeof(err));
    ck_assert_msg(ctx != NULL, "a matching certificate and key were refused: %s", err);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    ck_assert_msg(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION,
                  "client-initiated renegotiation should be off");
    SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_ctx_client_certificates)
{
    char err[512] = "";
    struct tls_options o = {cert_path, key_path, ca_path, 1};
    SSL_CTX *ctx = tls_server_ctx_new(&o, err, sizeof(err));
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    /* the CA is named to clients, so that they pick the right certificate */
    STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(ctx);
    ck_assert_int_eq(sk_X509_NAME_num(names), 1);
    char *ca_name = tls_name_rfc2253(sk_X509_NAME_value(names, 0));
    ck_assert_str_eq(ca_name, "CN=sn-test-ca");
    free(ca_name);
    SSL_CTX_free(ctx);

    o.client_cert_required = 0;
    ctx = tls_server_ctx_new(&o, err, sizeof(err));
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    SSL_CTX_free(ctx);
}
END_TEST

static void expect_error(const struct tls_options *o, const char *want1, const char *want2)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_server_ctx_new(o, err, sizeof(err));
    ck_assert_msg(ctx == NULL, "expected an error with '%s'", want1);
    ck_assert_contains(err, want1);
    ck_assert_contains(err, want2);
}

START_TEST(test_ctx_errors_name_the_file)
{
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    const struct tls_options no_cert = {missing, key_path, NULL, 0};
    expect_error(&no_cert, "tls.cert_file", "cannot open");
    expect_error(&no_cert, missing, "No such file");
    const struct tls_options no_key = {cert_path, missing, NULL, 0};
    expect_error(&no_key, "tls.key_file", missing);
    const struct tls_options junk_cert = {junk_path, key_path, NULL, 0};
    expect_error(&junk_cert, "tls.cert_file", junk_path);
    const struct tls_options junk_key = {cert_path, junk_path, NULL, 0};
    expect_error(&junk_key, "tls.key_file", junk_path);
    const struct tls_options other_key = {cert_path, other_key_path, NULL, 0};
    expect_error(&other_key, "does not match", other_key_path);
    const struct tls_options junk_ca = {cert_path, key_path, junk_path, 1};
    expect_error(&junk_ca, "tls.client_ca_file", junk_path);
    const struct tls_options no_ca = {cert_path, key_path, missing, 1};
    expect_error(&no_ca, "tls.client_ca_file", "cannot open");
}
END_TEST

/* The form `openssl x509 -noout -subject -nameopt RFC2253` prints: last RDN
 * first, "," "+" and quotes escaped, bytes past ASCII as \XX. */
START_TEST(test_name_rfc2253)
{
    static const char *const rdns[] = {
        "C", "US", "O", "Dept, of \"Children\"", "CN", "TN Case Syst\xC3\xA9m", NULL};
    EVP_PKEY *key = new_key();
    X509 *x = new_cert(key, rdns);
    char *text = tls_name_rfc2253(X509_get_subject_name(x));
    ck_assert_str_eq(text, "CN=TN Case Syst\\C3\\A9m,O=Dept\\, of \\\"Children\\\",C=US");
    free(text);
    X509_free(x);
    EVP_PKEY_free(key);
}
END_TEST

/* The map */

static struct auth *auth;

static void map_setup(void)
{
    auth = auth_new(NULL);
}

static void map_teardown(void)
{
    auth_free(auth);
    metrics_reset();
}

static void expect_identity(const char *subject, enum auth_role role, const char *jurisdiction)
{
    struct identity who;
    memset(&who, 0xAA, sizeof(who));
    enum auth_result rc = auth_check_client(auth, subject, &who);
    ck_assert_msg(rc == AUTH_OK, "subject '%s' should be mapped, got result %d", subject, rc);
    ck_assert_msg(who.role == role && strcmp(who.jurisdiction, jurisdiction) == 0 &&
                      who.token_id == 0,
                  "subject '%s': expected %s '%s' token 0, got %s '%s' token %lld", subject,
                  auth_role_name(role), jurisdiction, auth_role_name(who.role), who.jurisdiction,
                  who.token_id);
}

START_TEST(test_map_parse)
{
    char err[512] = "";
    const char *text =
        "# client certificates of the case systems\n"
        "\n"
        "CN=tn-case-system,O=Tennessee DCS,C=US  emitter  US-TN\n"
        "   CN=TN Case Syst\\C3\\A9m,O=Dept\\, of \\\"Children\\\",C=US\temitter US-TN\n"
        "CN=ops,O=NPCS   admin\r\n"
        "CN=la county  subscriber   US-CA-LAC  \n"
        "CN=last line without a break subscriber US-GA";
    ck_assert_msg(auth_clients_parse(auth, text, "map", err, sizeof(err)) == SN_OK, "%s", err);
    ck_assert_uint_eq(auth_clients_count(auth), 5);
    expect_identity("CN=tn-case-system,O=Tennessee DCS,C=US", ROLE_EMITTER, "US-TN");
    expect_identity("CN=TN Case Syst\\C3\\A9m,O=Dept\\, of \\\"Children\\\",C=US", ROLE_EMITTER,
                    "US-TN");
    expect_identity("CN=ops,O=NPCS", ROLE_ADMIN, "");
    expect_identity("CN=la county", ROLE_SUBSCRIBER, "US-CA-LAC");
    expect_identity("CN=last line without a break", ROLE_SUBSCRIBER, "US-GA");

    struct identity who;
    ck_assert_int_eq(auth_check_client(auth, "CN=nobody", &who), AUTH_INVALID);
    ck_assert_int_eq(auth_check_client(auth, NULL, &who), AUTH_MISSING);
    /* exactly as printed: no case folding, no spaces added */
    ck_assert_int_eq(auth_check_client(auth, "CN=OPS,O=NPCS", &who), AUTH_INVALID);
    ck_assert_int_eq(auth_check_client(auth, "CN=ops, O=NPCS", &who), AUTH_INVALID);
}
END_TEST

static void expect_parse_error(const char *text, const char *want1, const char *want2)
{
    char err[512] = "";
    enum sn_err rc = auth_clients_parse(auth, text, "clients.map", err, sizeof(err));
    ck_assert_msg(rc == SN_ERR_CONF, "expected an error with '%s' for: %s", want1, text);
    ck_assert_contains(err, want1);
    ck_assert_contains(err, want2);
}

START_TEST(test_map_errors_name_the_line)
{
    char err[512];
    ck_assert_int_eq(auth_clients_parse(auth, "CN=kept  admin\n", "map", err, sizeof(err)), SN_OK);
    expect_parse_error("\n\nCN=a\n", "clients.map:3:", "role one of admin, emitter, subscriber");
    expect_parse_error("CN=a  operator  US-TN\n", "clients.map:1:", "role one of");
    expect_parse_error("CN=a  admin  US-TN\n", "clients.map:1:", "an admin takes no jurisdiction");
    expect_parse_error("CN=a  emitter\n", "clients.map:1:", "an emitter needs a jurisdiction");
    expect_parse_error("CN=a  subscriber\n", "clients.map:1:", "a subscriber needs a jurisdiction");
    expect_parse_error("CN=a  emitter  us-tn\n", "clients.map:1:", "'us-tn' is not a jurisdiction");
    expect_parse_error("CN=a  emitter  US\n", "clients.map:1:", "not a jurisdiction");
    expect_parse_error("CN=a  emitter  US-ABCDEFGHIJKLM\n", "clients.map:1:", "not a jurisdiction");
    expect_parse_error("emitter US-TN\n", "clients.map:1:", "is not a subject DN");
    expect_parse_error("tn-case-system emitter US-TN\n", "clients.map:1:", "is not a subject DN");
    expect_parse_error("subject=CN=a emitter US-TN\n", "clients.map:1:", "drop the \"subject=\"");
    expect_parse_error("CN=a admin\n# x\nCN=b admin\nCN=a  admin\n",
                       "clients.map:4:", "mapped already on line 1");
    /* a refused map leaves the one in force */
    struct identity who;
    ck_assert_int_eq(auth_check_client(auth, "CN=kept", &who), AUTH_OK);
    ck_assert_uint_eq(auth_clients_count(auth), 1);
    /* an empty map is a map */
    ck_assert_int_eq(auth_clients_parse(auth, "# nobody yet\n", "map", err, sizeof(err)), SN_OK);
    ck_assert_int_eq(auth_check_client(auth, "CN=kept", &who), AUTH_INVALID);
}
END_TEST

START_TEST(test_map_load)
{
    char err[512] = "", path[160];
    snprintf(path, sizeof(path), "%s/clients.map", dir);
    ck_assert_int_eq(auth_clients_load(auth, path, err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, path);
    ck_assert_contains(err, "cannot open");
    write_text(path, "CN=a\0 admin\n", 12);
    ck_assert_int_eq(auth_clients_load(auth, path, err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "not a text file");

    /* a line written with the subject as tls_name_rfc2253() prints a
     * certificate's names that certificate */
    static const char *const rdns[] = {"C", "US", "O", "Georgia DFCS", "CN", "ga+case", NULL};
    EVP_PKEY *key = new_key();
    X509 *x = new_cert(key, rdns);
    char *subject = tls_name_rfc2253(X509_get_subject_name(x));
    char text[512];
    int n = snprintf(text, sizeof(text), "# generated\n%s  emitter  US-GA\n", subject);
    write_text(path, text, (size_t)n);
    ck_assert_msg(auth_clients_load(auth, path, err, sizeof(err)) == SN_OK, "%s", err);
    expect_identity(subject, ROLE_EMITTER, "US-GA");
    ck_assert_str_eq(subject, "CN=ga\\+case,O=Georgia DFCS,C=US");
    free(subject);
    X509_free(x);
    EVP_PKEY_free(key);
    unlink(path);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("context");
    tcase_add_checked_fixture(tc, files_setup, files_teardown);
    tcase_add_test(tc, test_ctx_tls12_and_up);
    tcase_add_test(tc, test_ctx_client_certificates);
    tcase_add_test(tc, test_ctx_errors_name_the_file);
    tcase_add_test(tc, test_name_rfc2253);
    suite_add_tcase(s, tc);
    tc = tcase_create("client_map");
    tcase_add_checked_fixture(tc, files_setup, files_teardown);
    tcase_add_checked_fixture(tc, map_setup, map_teardown);
    tcase_add_test(tc, test_map_parse);
    tcase_add_test(tc, test_map_errors_name_the_line);
    tcase_add_test(tc, test_map_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
