/* Fuzz target: the decoder of `freshet put` input files, one line at a time as the CLI reads them
 * (fr_cli_put_decode), against a view with one feature of every type. The first input byte picks
 * JSON lines (even) or CSV (odd; the input's first line is then the header, the second the row)
 * and whether --source is set (bit 1). A line is either a complete row or refused with a sentence
 * naming the column; never a crash or an overread. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const NAMES[] = {"n", "x", "f", "ok", "s", "raw", "emb"};
static const fr_type_t TYPES[] = {FR_TYPE_INT64,  FR_TYPE_DOUBLE, FR_TYPE_FLOAT,     FR_TYPE_BOOL,
                                  FR_TYPE_STRING, FR_TYPE_BYTES,  FR_TYPE_FLOAT_LIST};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    bool csv = data[0] & 1, with_source = data[0] & 2;
    char *text = malloc(size); /* the rest, NUL-terminated: lines come from getline */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char *header = text, *line = text;
    if (csv) {
        char *nl = strchr(text, '\n');
        if (!nl) {
            free(text);
            return 0;
        }
        *nl = 0;
        line = nl + 1;
    }
    char why[512] = "";
    int rc = fr_cli_put_decode("v", "card_id", sizeof NAMES / sizeof NAMES[0], NAMES, TYPES, csv,
                               with_source, header, line, why, sizeof why);
    if (rc == -2 || (rc != 0 && !why[0]))
        abort(); /* an accepted row must be complete; a refusal must say why */
    free(text);
    return 0;
}
