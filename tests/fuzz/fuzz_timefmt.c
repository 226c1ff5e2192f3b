/* Fuzz target for timestamps and durations: the input is tried as a timestamp (with its length)
 * and as a NUL-terminated duration. What parses must format and re-parse to the same value;
 * timestamps only within years 0000..9999, the range the RFC 3339 form can spell. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "freshet/err.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MIN_RFC3339_US (-62167219200LL * 1000000) /* 0000-01-01T00:00:00Z */
#define MAX_RFC3339_US (253402300800LL * 1000000 - 1) /* 9999-12-31T23:59:59.999999Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t us, back;
    char out[32];
    if (fr_time_parse((const char *)data, size, &us) == FR_OK) {
        fr_time_format(us, out);
        CHECK(strlen(out) < sizeof out);
        if (us >= MIN_RFC3339_US && us <= MAX_RFC3339_US) {
            CHECK(strlen(out) == 27);
            CHECK(fr_time_parse(out, strlen(out), &back) == FR_OK);
            CHECK(back == us);
        }
    }
    char s[64];
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (fr_duration_parse(s, &us) == FR_OK) {
        CHECK(us >= 0);
        fr_duration_format(us, out);
        CHECK(fr_duration_parse(out, &back) == FR_OK);
        CHECK(back == us);
    }
    return 0;
}
