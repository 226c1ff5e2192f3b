/* Access tokens: random generation (OpenSSL RAND_bytes), SHA-256 digests (EVP) and role names. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/token.h"
#include "freshet/err.h"

int fr_token_new(char out[FR_TOKEN_HEX + 1])
{
    uint8_t raw[FR_TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return FR_E_INTERNAL;
    fr_token_hex(raw, sizeof raw, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return FR_OK;
}

int fr_token_digest(const void *token, size_t len, uint8_t out[FR_TOKEN_DIGEST])
{
    unsigned int n = 0;
    if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != FR_TOKEN_DIGEST)
        return FR_E_INTERNAL;
    return FR_OK;
}

void fr_token_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fr_token_unhex(const char *text, size_t text_len, uint8_t *out, size_t n)
{
    if (text_len != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

const char *fr_token_role_name(fr_role_t role)
{
    switch (role) {
    case FR_ROLE_READ:
        return "read";
    case FR_ROLE_WRITE:
        return "write";
    case FR_ROLE_ADMIN:
        return "admin";
    case FR_ROLE_NONE:
        break;
    }
    return "none";
}

fr_role_t fr_token_role_parse(const char *name)
{
    if (strcmp(name, "read") == 0)
        return FR_ROLE_READ;
    if (strcmp(name, "write") == 0)
        return FR_ROLE_WRITE;
    if (strcmp(name, "admin") == 0)
        return FR_ROLE_ADMIN;
    return FR_ROLE_NONE;
}
