/* src/model artifact loader: corrupt, truncated and hostile artifacts are errors, never crashes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"
#include "model/model_int.h"
#include "model_test_util.h"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Re-seals an edited artifact (length + CRC) so the structural checks are what gets tested. */
static void reseal(uint8_t *a, size_t len)
{
    put32(a + 40, (uint32_t)len);
    put32(a + 44, 0);
    put32(a + len - 4, fr_model_crc32(a, len - 4));
}

/* If it loads, it must evaluate without faults. */
static void exercise(const uint8_t *a, size_t len)
{
    fr_model_t *m = NULL;
    const char *why = NULL;
    if (fr_model_load_mem(a, len, &m, &why) != FR_OK) {
        cr_assert_null(m);
        cr_assert(why && why[0]);
        return;
    }
    uint32_t nf = fr_model_n_features(m), k = fr_model_n_outputs(m);
    float *x = malloc(nf * sizeof *x), *mg = malloc(k * sizeof *mg), *pr = malloc(k * sizeof *pr);
    for (uint32_t i = 0; i < nf; i++)
        x[i] = NAN;
    fr_model_predict_row(m, x, mg, pr);
    memset(x, 0, nf * sizeof *x);
    fr_model_predict_row(m, x, mg, pr);
    free(x), free(mg), free(pr);
    fr_model_free(m);
}

Test(artifact, every_truncation_is_rejected)
{
    static const char *names[] = {"bin_logistic_d1_t1", "multi_softmax_d4_t15_k3", "linear_logistic"};
    for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
        size_t len;
        uint8_t *art = mt_compile_bytes(names[n], n == 2 ? NULL : "{\"f0\": \"v:a\"}", &len);
        for (size_t cut = 0; cut < len; cut++) {
            fr_model_t *m = NULL;
            const char *why = NULL;
            uint8_t *copy = malloc(cut ? cut : 1); /* exact-size copy so ASan sees over-reads */
            memcpy(copy, art, cut);
            cr_assert_eq(fr_model_load_mem(copy, cut, &m, &why), FR_E_BAD_MODEL, "%s cut %zu", names[n], cut);
            cr_assert_null(m);
            free(copy);
        }
        free(art);
    }
}

Test(artifact, every_flipped_byte_fails_the_checksum)
{
    size_t len;
    uint8_t *art = mt_compile_bytes("bin_logistic_d3_t50", NULL, &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            fr_model_t *m = NULL;
            art[i] ^= (uint8_t)(1u << bit);
            fr_err_t rc = fr_model_load_mem(art, len, &m, NULL);
            cr_assert(rc == FR_E_BAD_MODEL || rc == FR_E_UNSUPPORTED, "byte %zu bit %d: %d", i, bit, rc);
            art[i] ^= (uint8_t)(1u << bit);
        }
    }
    free(art);
}

Test(artifact, resealed_random_corruption_never_crashes)
{
    static const char *names[] = {"bin_logistic_d3_t50", "multi_softprob_d3_t25_k4", "linear_regression"};
    uint32_t seed = 12345;
    for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
        size_t len;
        uint8_t *art = mt_compile_bytes(names[n], NULL, &len);
        uint8_t *copy = malloc(len);
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(copy, art, len);
            for (int e = 0; e < 1 + iter % 4; e++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = 8 + (seed >> 8) % (len - 12);
                seed = seed * 1103515245u + 12345u;
                copy[at] = (iter & 1) ? (uint8_t)(seed >> 16) : copy[at] ^ (uint8_t)(1u << ((seed >> 16) % 8));
            }
            reseal(copy, len);
            exercise(copy, len);
        }
        free(copy);
        free(art);
    }
}

Test(artifact, huge_counts_are_rejected_before_allocating)
{
    size_t len;
    uint8_t *art = mt_compile_bytes("bin_logistic_d3_t50", NULL, &len);
    static const struct {
        size_t off;
        uint32_t v;
    } edits[] = {
        {20, 0xffffffffu}, {20, 0x7fffffffu}, {24, 0xffffffffu}, {24, 0}, {28, 0xffffffffu},
        {28, 51}, {32, 0xffffffffu}, {36, 1}, {12, 2}, {16, 99}, {8, 2},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        uint8_t *copy = malloc(len);
        fr_model_t *m = NULL;
        const char *why = NULL;
        memcpy(copy, art, len);
        put32(copy + edits[i].off, edits[i].v);
        reseal(copy, len);
        fr_err_t rc = fr_model_load_mem(copy, len, &m, &why);
        cr_assert(rc != FR_OK, "edit %zu loaded", i);
        cr_assert_null(m);
        free(copy);
    }
    free(art);
}

/* Node section of a model with one feature: header 64 + names + bindings + trees. */
static size_t nodes_offset(const uint8_t *a, uint32_t n_trees)
{
    size_t off = 64;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < 8; i++) {
            uint32_t l = (uint32_t)a[off] | (uint32_t)a[off + 1] << 8;
            off += 4 + l;
        }
    return off + 8 * (size_t)n_trees;
}

Test(artifact, bad_child_indices_and_features_are_rejected)
{
    size_t len;
    uint8_t *art = mt_compile_bytes("bin_logistic_d3_t50", NULL, &len);
    size_t nodes = nodes_offset(art, 50);
    static const struct {
        size_t field; /* 0 split, 2 left */
        uint32_t v;
        const char *why;
    } edits[] = {
        {2, 0xffffffffu, "child index"}, {2, 0x7fffffffu, "child index"}, {8 + 0, 0, NULL},
        {0, 8, "feature"}, {0, 0x7fffffffu, "feature"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        uint8_t *copy = malloc(len);
        fr_model_t *m = NULL;
        const char *why = NULL;
        memcpy(copy, art, len);
        if (edits[i].field == 8) {
            /* Root's left child points back at the root: a cycle. */
            put32(copy + nodes + 8, 0);
            put32(copy + nodes + 12 + 8, 0);
        } else {
            put32(copy + nodes + 4 * edits[i].field, edits[i].v);
        }
        reseal(copy, len);
        fr_err_t rc = fr_model_load_mem(copy, len, &m, &why);
        if (edits[i].why) {
            cr_assert_eq(rc, FR_E_BAD_MODEL, "edit %zu", i);
            cr_assert(strstr(why, edits[i].why), "edit %zu: %s", i, why);
        } else {
            cr_assert(rc != FR_OK || m, "edit %zu", i);
            fr_model_free(m);
        }
        free(copy);
    }
    free(art);
}

Test(artifact, load_file_roundtrip_and_missing_file)
{
    char out[512], why[256] = "";
    snprintf(out, sizeof out, FR_BIN_DIR "/model_test_artifact.frm");
    fr_err_t rc = fr_model_compile_file(MT_FIXTURES "bin_logistic_d3_t50.json", NULL, out, why, sizeof why);
    cr_assert_eq(rc, FR_OK, "%s", why);
    fr_model_t *m = NULL;
    const char *lwhy = NULL;
    cr_assert_eq(fr_model_load_file(out, &m, &lwhy), FR_OK, "%s", lwhy);
    cr_assert_eq(fr_model_n_trees(m), 50);
    fr_model_free(m);
    remove(out);
    cr_assert_eq(fr_model_load_file(out, &m, &lwhy), FR_E_IO);
    cr_assert_eq(fr_model_compile_file("/nonexistent.json", NULL, out, why, sizeof why), FR_E_IO);
}
