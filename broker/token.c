#include "token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

enum sn_err token_generate(char *out, size_t outlen)
{
    unsigned char raw[32];
    unsigned char b64[64];
    if (outlen < TOKEN_TEXT_LEN + 1) return SN_ERR_INVAL;
    if (RAND_bytes(raw, sizeof(raw)) != 1) return SN_ERR_CRYPTO;
    int n = EVP_EncodeBlock(b64, raw, sizeof(raw));
    /* base64 -> base64url, unpadded: safe in headers, URLs and shell words */
    size_t o = 0;
    memcpy(out, TOKEN_PREFIX, 3);
    o = 3;
    for (int i = 0; i < n && b64[i] != '='; i++)
        out[o++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return SN_OK;
}

void token_hash_hex(const char *token, char hex[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}
