/* Fuzz target: the freshetd configuration parsers (config file lines and single settings). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "fuzz_file.h"
#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fr_fuzz_config_XXXXXX";
    if (fuzz_write_file(path, data, size) != 0)
        return 0;
    fr_config_t c;
    fr_config_defaults(&c);
    char why[256];
    fr_config_load_file(&c, path, why, sizeof why);
    unlink(path);
    /* the same bytes as "name=value" through fr_config_set */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *eq = strchr(text, '=');
    if (eq) {
        *eq = 0;
        fr_config_set(&c, text, eq + 1, why, sizeof why);
    }
    free(text);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        fr_config_dump(&c, null);
        fclose(null);
    }
    return 0;
}
