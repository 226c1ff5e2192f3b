/* For fuzz targets of command-line parsers: the input split into an argv of at most
 * FUZZ_ARGV_MAX words, argv[0] the program's name. */
#ifndef FR_TESTS_FUZZ_ARGV_H
#define FR_TESTS_FUZZ_ARGV_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ARGV_MAX 64

typedef struct {
    char *text;                    /* the words, NUL-terminated, one allocation */
    char *argv[FUZZ_ARGV_MAX + 2]; /* argv[argc] is NULL, as main() gets it */
    int argc;
    size_t used; /* bytes of data the words took (the separator ending them included) */
} fuzz_argv_t;

/* Splits data at every '\n' (and at NUL when nul_splits; else the first NUL ends the words, and
 * what follows it is left to the caller from data + used). Words past FUZZ_ARGV_MAX are dropped.
 * 0, or -1 when out of memory. fuzz_argv_free releases it. */
static inline int fuzz_argv_split(fuzz_argv_t *a, const uint8_t *data, size_t size,
                                  const char *prog, int nul_splits)
{
    size_t n = size;
    if (!nul_splits) {
        const uint8_t *nul = memchr(data, 0, size);
        n = nul ? (size_t)(nul - data) : size;
    }
    a->used = n < size ? n + 1 : n;
    a->text = malloc(n + 1);
    if (!a->text)
        return -1;
    memcpy(a->text, data, n);
    a->text[n] = 0;
    a->argv[0] = (char *)prog;
    a->argc = 1;
    char *w = a->text, *end = a->text + n;
    while (a->argc <= FUZZ_ARGV_MAX) {
        char *sep = w;
        while (sep < end && *sep != '\n' && *sep != 0)
            sep++;
        a->argv[a->argc++] = w;
        if (sep >= end)
            break;
        *sep = 0;
        w = sep + 1;
    }
    if (n == 0)
        a->argc = 1; /* no input: no words */
    a->argv[a->argc] = NULL;
    return 0;
}

static inline void fuzz_argv_free(fuzz_argv_t *a)
{
    free(a->text);
}

#endif
