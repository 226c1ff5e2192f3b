/* `freshet token new NAME ROLE`: makes a fresh random token and prints it once, with the line to
 * add to freshetd's --auth-file (which holds only the token's SHA-256). Needs no server. */
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "common/token.h"
#include "freshet/err.h"

#define USAGE "usage: freshet token new NAME read|write|admin"

int fr_cli_token(fr_cli_ctx_t *ctx)
{
    if (ctx->argc != 3 || strcmp(ctx->argv[0], "new") != 0)
        return fr_cli_fail(2, USAGE);
    const char *name = ctx->argv[1], *role = ctx->argv[2];
    if (fr_token_role_parse(role) == FR_ROLE_NONE)
        return fr_cli_fail(2, "ROLE: \"%s\" is not one of read, write, admin", role);
    size_t n = strlen(name);
    if (n == 0 || n > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_-.@") != n)
        return fr_cli_fail(2, "NAME: 1-64 characters of [A-Za-z0-9_.@-]");
    char token[FR_TOKEN_HEX + 1], hex[2 * FR_TOKEN_DIGEST + 1];
    uint8_t digest[FR_TOKEN_DIGEST];
    int rc = fr_token_new(token);
    if (rc == FR_OK)
        rc = fr_token_digest(token, FR_TOKEN_HEX, digest);
    if (rc != FR_OK)
        return fr_cli_fail(rc,
                           "cannot generate a token (system random generator or SHA-256 failed)");
    fr_token_hex(digest, sizeof digest, hex);
    /* stdout: exactly two lines, the token then the auth-file line, so scripts can split them */
    printf("%s\n%s %s %s\n", token, name, role, hex);
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof token);
    fprintf(stderr,
            "token: line 1 is the token (shown once; give it to the client as FRESHET_TOKEN),\n"
            "       line 2 goes into freshetd's --auth-file; send freshetd SIGHUP to load it.\n");
    return 0;
}
