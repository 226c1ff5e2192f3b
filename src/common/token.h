/* Access tokens and roles, shared by freshetd (which checks tokens) and the CLI (which makes them).
 *
 * A token is 32 random bytes written as 64 lowercase hex characters. Only its SHA-256 digest is
 * stored (the auth file line `NAME ROLE SHA256HEX`), so a leaked auth file does not leak tokens.
 * Roles are ordered: read < write < admin; a role allows everything the roles below it allow. */
#ifndef FR_COMMON_TOKEN_H
#define FR_COMMON_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define FR_TOKEN_BYTES 32
#define FR_TOKEN_HEX (2 * FR_TOKEN_BYTES) /* length of a token's text */
#define FR_TOKEN_DIGEST 32                /* SHA-256 */

typedef enum {
    FR_ROLE_NONE = 0, /* not authenticated */
    FR_ROLE_READ = 1,
    FR_ROLE_WRITE = 2,
    FR_ROLE_ADMIN = 3,
} fr_role_t;

/* Writes a fresh random token (FR_TOKEN_HEX characters + NUL) into out. FR_E_INTERNAL when the
 * system's random generator fails. */
int fr_token_new(char out[FR_TOKEN_HEX + 1]);
/* SHA-256 of the token's text. FR_E_INTERNAL when the digest cannot be computed. */
int fr_token_digest(const void *token, size_t len, uint8_t out[FR_TOKEN_DIGEST]);
/* Lowercase hex of n bytes into out (2n characters + NUL). */
void fr_token_hex(const uint8_t *p, size_t n, char *out);
/* Parses 2n hex characters (either case) into n bytes. 0, or -1 when text is not exactly that. */
int fr_token_unhex(const char *text, size_t text_len, uint8_t *out, size_t n);
/* "read", "write", "admin" (and "none"); the parser returns FR_ROLE_NONE for anything else. */
const char *fr_token_role_name(fr_role_t role);
fr_role_t fr_token_role_parse(const char *name);

#endif
