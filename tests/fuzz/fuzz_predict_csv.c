/* Fuzz target: `freshet predict --csv` input (fr_model_predict_csv: the header mapped to the
 * model's feature names, then one row per line) against a small compiled linear model with
 * features x0, x1. Any bytes are scored or refused with a reason; never a crash or an overread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char MODEL[] = "{\"type\": \"logistic\", \"n_features\": 2, \"feature_names\": [\"x0\", \"x1\"],"
                            " \"weights\": [0.5, -0.25], \"bias\": 0.1, \"link\": \"sigmoid\"}";

static fr_model_t *model(void)
{
    static fr_model_t *m;
    if (m)
        return m;
    uint8_t *art = NULL;
    size_t len = 0;
    char why[256];
    const char *lwhy = NULL;
    if (fr_model_compile(MODEL, sizeof MODEL - 1, NULL, 0, &art, &len, why, sizeof why) != FR_OK ||
        fr_model_load_mem(art, len, &m, &lwhy) != FR_OK)
        abort();
    free(art);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1 << 16)
        return 0;
    FILE *in = fmemopen((void *)data, size, "r");
    FILE *out = fopen("/dev/null", "w");
    if (in && out) {
        const char *why = NULL;
        if (fr_model_predict_csv(model(), in, out, &why) != FR_OK && !why)
            abort(); /* a refusal always says why */
    }
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    return 0;
}
