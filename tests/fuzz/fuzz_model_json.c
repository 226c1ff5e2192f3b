/* Fuzz target for the model compiler's input (XGBoost / linear JSON): anything that compiles must
 * load back from the artifact and evaluate a row of NaNs and a row of zeros. The first byte selects
 * whether the rest is compiled alone or with a small feature map. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    static const char map[] = "{\"f0\": \"view:a\"}";
    uint8_t *art = NULL;
    size_t art_len = 0;
    char why[256];
    int with_map = data[0] & 1;
    fr_err_t rc = fr_model_compile((const char *)data + 1, size - 1, with_map ? map : NULL,
                                   with_map ? sizeof map - 1 : 0, &art, &art_len, why, sizeof why);
    if (rc != FR_OK) {
        if (art)
            abort();
        return 0;
    }
    fr_model_t *m = NULL;
    const char *lwhy = NULL;
    if (fr_model_load_mem(art, art_len, &m, &lwhy) != FR_OK)
        abort(); /* the compiler must only produce loadable artifacts */
    uint32_t nf = fr_model_n_features(m), k = fr_model_n_outputs(m);
    float *x = calloc(nf, sizeof *x), *mg = malloc(k * sizeof *mg), *pr = malloc(k * sizeof *pr);
    if (x && mg && pr) {
        fr_model_predict_row(m, x, mg, pr);
        for (uint32_t i = 0; i < nf; i++)
            x[i] = NAN;
        fr_model_predict_row(m, x, mg, pr);
    }
    free(x), free(mg), free(pr);
    fr_model_free(m);
    free(art);
    return 0;
}
