/* Shared helpers of the model tests (header-only: every test_*.c is its own binary). */
#ifndef FR_TEST_MODEL_UTIL_H
#define FR_TEST_MODEL_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"

#define MT_FIXTURES FR_SOURCE_DIR "/tests/unit/model/fixtures/"

typedef struct {
    char name[128];
    char kind[16];
    unsigned n_margins, n_preds;
} mt_fixture_t;

/* Reads fixtures/<name><ext> NUL-terminated; *len (optional) excludes the NUL. */
static inline char *mt_read_fixture(const char *name, const char *ext, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, MT_FIXTURES "%s%s", name, ext);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static inline mt_fixture_t *mt_manifest(size_t *n)
{
    char *txt = mt_read_fixture("manifest", ".txt", NULL);
    mt_fixture_t *fx = calloc(64, sizeof *fx);
    size_t i = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line && i < 64; line = strtok_r(NULL, "\n", &save)) {
        cr_assert_eq(sscanf(line, "%127s %15s %u %u", fx[i].name, fx[i].kind, &fx[i].n_margins,
                            &fx[i].n_preds), 4);
        i++;
    }
    free(txt);
    *n = i;
    return fx;
}

/* Compiles fixtures/<name>.json (through fr_model_compile, like freshet-compile) and loads the
 * artifact from memory. */
static inline uint8_t *mt_compile_bytes(const char *name, const char *map, size_t *art_len)
{
    size_t len;
    char *json = mt_read_fixture(name, ".json", &len);
    uint8_t *art = NULL;
    char why[512] = "";
    fr_err_t rc = fr_model_compile(json, len, map, map ? strlen(map) : 0, &art, art_len, why, sizeof why);
    cr_assert_eq(rc, FR_OK, "compile %s: %s: %s", name, fr_err_name(rc), why);
    free(json);
    return art;
}

static inline fr_model_t *mt_compile_fixture(const char *name, const char *map)
{
    size_t art_len;
    uint8_t *art = mt_compile_bytes(name, map, &art_len);
    fr_model_t *m = NULL;
    const char *why = NULL;
    fr_err_t rc = fr_model_load_mem(art, art_len, &m, &why);
    cr_assert_eq(rc, FR_OK, "load %s: %s: %s", name, fr_err_name(rc), why);
    free(art);
    return m;
}

#endif
