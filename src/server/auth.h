/* Authentication and authorisation of freshetd (README, "Security").
 *
 * The auth file (--auth-file) holds one token a line as `NAME ROLE SHA256HEX` ('#' comments and
 * blank lines allowed); tokens themselves are never stored. A presented token is hashed and
 * compared with every entry in constant time (CRYPTO_memcmp, no early exit), so the time taken says
 * nothing about which entry, if any, matched. An fr_auth_t is immutable once loaded: the worker
 * threads and the HTTP worker read it concurrently without locks. SIGHUP loads the file again into
 * a new fr_auth_t that replaces the current one (server.c); replaced ones stay allocated until the
 * server is freed, so a reader never holds a freed table. */
#ifndef FR_SERVER_AUTH_H
#define FR_SERVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/token.h"

typedef struct fr_auth fr_auth_t;

/* Loads an auth file. FR_E_IO (unreadable), FR_E_BAD_ARG ("FILE:LINE: reason" in why: unknown role,
 * bad digest, duplicate name, no entries), FR_E_NOMEM. */
int fr_auth_load(const char *path, fr_auth_t **out, char *why, size_t why_len);
void fr_auth_free(fr_auth_t *a);
size_t fr_auth_count(const fr_auth_t *a);
/* The role of a presented token, FR_ROLE_NONE when it matches no entry. *name (may be NULL) gets
 * the entry's name, valid as long as a. */
fr_role_t fr_auth_check(const fr_auth_t *a, const void *token, size_t len, const char **name);
/* The same for a token's digest (fr_token_digest), so a connection can be checked again against a
 * reloaded file without keeping the token itself. */
fr_role_t fr_auth_check_digest(const fr_auth_t *a, const uint8_t digest[FR_TOKEN_DIGEST],
                               const char **name);
/* Chains replaced tables, freed together by fr_auth_free of the newest. */
void fr_auth_retire(fr_auth_t *current, fr_auth_t *replaced);

#endif
