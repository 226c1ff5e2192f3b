/* Fuzz target: the CLI's text readers of user files and flags outside the put decoder: CSV
 * records (fr_cli_csv_record, records spanning lines inside quotes), CSV splitting
 * (fr_cli_csv_split), --as-of times (fr_cli_parse_time) and numeric flags (fr_cli_parse_uint).
 * Every field stays inside its record, a time either parses or is refused, and a number is
 * digits only; never a crash or an overread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    FILE *in = fmemopen((void *)data, size ? size : 1, "r");
    if (!in)
        return 0;
    if (!size)
        fgetc(in); /* an empty input: at end at once */
    char *buf = NULL;
    size_t cap = 0, lines = 0, records = 0;
    ssize_t n;
    while ((n = fr_cli_csv_record(&buf, &cap, in, &lines)) >= 0) {
        CHECK((size_t)n <= size && lines >= ++records);
        char *fields[64];
        char *copy = malloc((size_t)n + 1);
        memcpy(copy, buf, (size_t)n);
        copy[n] = 0;
        fr_cli_chomp(copy);
        size_t len = strlen(copy);
        int nf = fr_cli_csv_split(fr_cli_skip_bom(copy), fields, 64);
        CHECK(nf >= -1 && nf <= 64);
        for (int i = 0; i < nf; i++)
            CHECK(fields[i] >= copy && fields[i] + strlen(fields[i]) <= copy + len);
        free(copy);
    }
    free(buf);
    fclose(in);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    int64_t t = 0;
    int rc = fr_cli_parse_time(text, 1795860000000000LL, &t);
    CHECK(rc == 0 || rc == -1);
    /* a numeric flag's value: digits only, in range, the number they spell */
    uint64_t u = 0;
    if (fr_cli_parse_uint(text, 1, 65536, &u) == 0) {
        CHECK(text[0] && strspn(text, "0123456789") == strlen(text));
        CHECK(u >= 1 && u <= 65536 && strtoull(text, NULL, 10) == u);
    }
    if (fr_cli_parse_uint(text, 0, UINT64_MAX, &u) == 0)
        CHECK(strspn(text, "0123456789") == strlen(text) && strtoull(text, NULL, 10) == u);
    free(text);
    return 0;
}
