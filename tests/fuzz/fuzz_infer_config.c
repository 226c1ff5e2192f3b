/* Fuzz target: freshet-infer's command line (fr_infer_config_parse). The input is the argv words,
 * one per line (a NUL also ends a word), at most FUZZ_ARGV_MAX; --help goes to /dev/null. Any
 * words either parse into a configuration within the table's bounds or are refused, with a why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "fuzz_argv.h"
#include "fuzz_check.h"
#include "infer/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A string field ends inside its buffer. */
#define TERMINATED(f) (memchr((f), 0, sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w")))
        return 0;
    if (size > 1 << 16)
        return 0;
    fuzz_argv_t a;
    if (fuzz_argv_split(&a, data, size, "freshet-infer", 1) != 0)
        return 0;
    fr_infer_config_t cfg;
    char why[512] = "";
    int rc = fr_infer_config_parse(&cfg, a.argc, a.argv, null, why, sizeof why);
    if (rc == FR_OK) {
        CHECK(TERMINATED(cfg.model) && TERMINATED(cfg.server) && TERMINATED(cfg.listen) &&
              TERMINATED(cfg.http) && TERMINATED(cfg.log_level));
        CHECK(cfg.model[0]); /* required */
        CHECK(cfg.threads >= 1 && cfg.threads <= 64);
        CHECK(cfg.max_missing >= -1);
        CHECK(cfg.max_rows >= 1 && cfg.fetch_batch >= 1 && cfg.timeout_ms >= 1);
        CHECK(cfg.max_frame >= 1024 && cfg.max_body >= 1024);
    } else if (rc != 1) {
        CHECK(rc == FR_E_BAD_ARG && why[0]); /* a refusal always says why */
    }
    fuzz_argv_free(&a);
    return 0;
}
