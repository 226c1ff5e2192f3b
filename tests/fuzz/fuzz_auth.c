/* Fuzz target: the auth file reader (fr_auth_load): any bytes either load as a token table that
 * answers lookups, or are refused with a reason naming the line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "fuzz_file.h"
#include "server/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fr_fuzz_auth_XXXXXX";
    if (fuzz_write_file(path, data, size) != 0)
        return 0;
    fr_auth_t *a = NULL;
    char why[512] = "";
    int rc = fr_auth_load(path, &a, why, sizeof why);
    unlink(path);
    if (rc == FR_OK) {
        const char *name = NULL;
        fr_auth_check(a, data, size < 64 ? size : 64, &name); /* any token: a role or none */
        fr_auth_free(a);
    } else if (!why[0]) {
        abort(); /* a refusal always says why */
    }
    return 0;
}
