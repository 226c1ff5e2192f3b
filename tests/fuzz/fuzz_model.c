/* Fuzz target for the model artifact loader (fr_model_load_mem). Each input is loaded as is, and
 * again with its length field and CRC re-sealed so the fuzzer reaches the structural checks behind
 * the checksum. Whatever loads is evaluated on a row of NaNs and a row of zeros (single and batch)
 * and freed, so ASan/UBSan/LeakSanitizer see any mistake. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"
#include "model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_load(const uint8_t *data, size_t size)
{
    fr_model_t *m = NULL;
    const char *why = NULL;
    if (fr_model_load_mem(data, size, &m, &why) != FR_OK) {
        if (m || !why)
            abort();
        return;
    }
    uint32_t nf = fr_model_n_features(m), k = fr_model_n_outputs(m);
    float *x = malloc(2 * (size_t)nf * sizeof *x);
    float *mg = malloc(2 * (size_t)k * sizeof *mg), *pr = malloc(2 * (size_t)k * sizeof *pr);
    double *xd = malloc((size_t)nf * sizeof *xd), *mgd = malloc(k * sizeof *mgd),
           *prd = malloc(k * sizeof *prd);
    if (x && mg && pr && xd && mgd && prd) {
        for (uint32_t i = 0; i < nf; i++) {
            x[i] = NAN;
            x[nf + i] = 0.0f;
            xd[i] = NAN;
        }
        fr_model_predict_row(m, x, mg, pr);
        fr_model_predict_row(m, x + nf, mg, pr);
        fr_model_predict_row_f64(m, xd, mgd, prd);
        fr_model_predict_batch(m, x, 2, mg, pr);
        (void)fr_model_argmax(m, mg);
        for (uint32_t i = 0; i < nf; i++)
            (void)fr_model_feature_binding(m, i);
    }
    free(x), free(mg), free(pr), free(xd), free(mgd), free(prd);
    fr_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_load(data, size);
    if (size < 68 || size > (1u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    for (int i = 0; i < 8; i++)
        copy[40 + i] = (uint8_t)((uint64_t)size >> (8 * i));
    uint32_t crc = fr_model_crc32(copy, size - 4);
    for (int i = 0; i < 4; i++)
        copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    try_load(copy, size);
    free(copy);
    return 0;
}
