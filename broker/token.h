/* API tokens: random, shown once, stored only as their SHA-256. */
#ifndef SN_TOKEN_H
#define SN_TOKEN_H

#include <stddef.h>

#include "sn.h"

#define TOKEN_PREFIX   "sn_"
#define TOKEN_TEXT_LEN (3 + 43) /* prefix + base64url of 32 bytes, unpadded */

/* Writes a new token ("sn_" + base64url of 32 random bytes from OpenSSL) into
 * out, which holds at least TOKEN_TEXT_LEN + 1 bytes. */
enum sn_err token_generate(char *out, size_t outlen);
/* The SHA-256 of token as 64 lower-case hex digits into hex (65 bytes). */
void token_hash_hex(const char *token, char hex[65]);

#endif
