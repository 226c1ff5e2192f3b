/* The auth file and token checks (auth.h): parsing, constant-time lookup, the role each op needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "freshet/err.h"

#define NAME_MAX_LEN 64

typedef struct {
    char name[NAME_MAX_LEN + 1];
    fr_role_t role;
    uint8_t digest[FR_TOKEN_DIGEST];
} entry_t;

struct fr_auth {
    entry_t *entries;
    size_t count;
    struct fr_auth *replaced; /* older tables, kept until this one is freed (auth.h) */
};

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '@'))
            return 0;
    }
    return 1;
}

static int parse_line(fr_auth_t *a, char *line, const char **reason)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *role = name ? strtok_r(NULL, " \t", &save) : NULL;
    char *hex = role ? strtok_r(NULL, " \t", &save) : NULL;
    if (!hex || strtok_r(NULL, " \t", &save)) {
        *reason = "expected `NAME ROLE SHA256HEX`";
        return FR_E_BAD_ARG;
    }
    if (!name_ok(name)) {
        *reason = "NAME: 1-64 characters of [A-Za-z0-9_.@-]";
        return FR_E_BAD_ARG;
    }
    entry_t e = {0};
    snprintf(e.name, sizeof e.name, "%s", name);
    e.role = fr_token_role_parse(role);
    if (e.role == FR_ROLE_NONE) {
        *reason = "ROLE: one of read, write, admin";
        return FR_E_BAD_ARG;
    }
    if (fr_token_unhex(hex, strlen(hex), e.digest, sizeof e.digest) != 0) {
        *reason = "SHA256HEX: 64 hex characters (the digest `freshet token new` prints)";
        return FR_E_BAD_ARG;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->entries[i].name, e.name) == 0) {
            *reason = "NAME: duplicate (each token needs its own name)";
            return FR_E_BAD_ARG;
        }
        /* one token under two names would get whichever role is checked last */
        if (memcmp(a->entries[i].digest, e.digest, sizeof e.digest) == 0) {
            *reason = "SHA256HEX: duplicate token (the same digest is on an earlier line)";
            return FR_E_BAD_ARG;
        }
    }
    entry_t *p = realloc(a->entries, (a->count + 1) * sizeof *p);
    if (!p)
        return FR_E_NOMEM;
    a->entries = p;
    a->entries[a->count++] = e;
    return FR_OK;
}

int fr_auth_load(const char *path, fr_auth_t **out, char *why, size_t why_len)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "auth_file: cannot open %s", path);
        return FR_E_IO;
    }
    fr_auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        fclose(f);
        return FR_E_NOMEM;
    }
    /* whole lines of any length: fgets in pieces read the tail of a long comment as a token */
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = FR_OK;
    while (rc == FR_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        line[strcspn(line, "\r\n")] = 0;
        if (line[strspn(line, " \t")] == 0)
            continue;
        const char *reason = "out of memory";
        rc = parse_line(a, line, &reason);
        if (rc != FR_OK)
            snprintf(why, why_len, "%s:%d: %s", path, lineno, reason);
    }
    free(line);
    fclose(f);
    if (rc == FR_OK && a->count == 0) {
        snprintf(why, why_len, "%s: no tokens (add lines made by `freshet token new NAME ROLE`)",
                 path);
        rc = FR_E_BAD_ARG;
    }
    if (rc != FR_OK) {
        fr_auth_free(a);
        return rc;
    }
    *out = a;
    return FR_OK;
}

void fr_auth_free(fr_auth_t *a)
{
    while (a) {
        fr_auth_t *older = a->replaced;
        OPENSSL_cleanse(a->entries, a->count * sizeof *a->entries);
        free(a->entries);
        free(a);
        a = older;
    }
}

void fr_auth_retire(fr_auth_t *current, fr_auth_t *replaced)
{
    fr_auth_t **tail = &current->replaced;
    while (*tail)
        tail = &(*tail)->replaced;
    *tail = replaced;
}

size_t fr_auth_count(const fr_auth_t *a)
{
    return a ? a->count : 0;
}

fr_role_t fr_auth_check(const fr_auth_t *a, const void *token, size_t len, const char **name)
{
    uint8_t d[FR_TOKEN_DIGEST];
    if (name)
        *name = NULL;
    if (!a || fr_token_digest(token, len, d) != FR_OK)
        return FR_ROLE_NONE;
    fr_role_t role = fr_auth_check_digest(a, d, name);
    OPENSSL_cleanse(d, sizeof d);
    return role;
}

fr_role_t fr_auth_check_digest(const fr_auth_t *a, const uint8_t d[FR_TOKEN_DIGEST],
                               const char **name)
{
    if (name)
        *name = NULL;
    if (!a)
        return FR_ROLE_NONE;
    /* Compare against every entry, always: no early exit, no branch on a secret-dependent value
     * except the final selection (digests are unique in practice). */
    size_t match = a->count;
    for (size_t i = 0; i < a->count; i++) {
        int differ = CRYPTO_memcmp(d, a->entries[i].digest, FR_TOKEN_DIGEST) != 0;
        size_t mask = (size_t)differ - 1; /* all ones when equal */
        match = (match & ~mask) | (i & mask);
    }
    if (match == a->count)
        return FR_ROLE_NONE;
    if (name)
        *name = a->entries[match].name;
    return a->entries[match].role;
}
