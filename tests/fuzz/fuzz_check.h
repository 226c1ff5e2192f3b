/* For fuzz targets: CHECK(cond) states what must hold for every input. A failure names the file,
 * line and condition and aborts, which libFuzzer (and the corpus replay in ctest) reports as a
 * finding. */
#ifndef FR_TESTS_FUZZ_CHECK_H
#define FR_TESTS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
