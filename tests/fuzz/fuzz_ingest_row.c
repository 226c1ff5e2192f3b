/* Fuzz target: the decoder of stream messages consumed from NATS JetStream (--ingest): a protobuf
 * `Row` decoded and validated against a registry (fr_ingest_decode_row, exactly what the consumer
 * runs per message). It must never crash or read past the message; an accepted row must be
 * complete, a refused one must say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "server/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REGISTRY[] =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"1h\", \"features\": ["
    "{\"name\": \"i\", \"type\": \"int64\"}, {\"name\": \"d\", \"type\": \"double\"},"
    "{\"name\": \"f\", \"type\": \"float\"}, {\"name\": \"b\", \"type\": \"bool\"},"
    "{\"name\": \"s\", \"type\": \"string\"}, {\"name\": \"y\", \"type\": \"bytes\"},"
    "{\"name\": \"l\", \"type\": \"float_list\"}]}]}";

#define NOW_US 1795860000000000LL /* 2026-11-28T10:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fr_registry_t *reg;
    if (!reg) {
        const char *why = "";
        if (fr_registry_parse(REGISTRY, strlen(REGISTRY), &reg, &why) != FR_OK) {
            fprintf(stderr, "fuzz_ingest_row: registry: %s\n", why);
            abort();
        }
    }
    uint8_t *msg = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    memcpy(msg, data, size);
    fr_write_row_t r;
    char view[FR_INGEST_VIEW_MAX];
    const char *why = NULL;
    int rc = fr_ingest_decode_row(reg, msg, size, NOW_US, 3600LL * 1000000, &r, view, &why);
    if (rc == FR_OK) {
        if (!r.view || !r.entity || !r.entity_len || !r.values)
            abort();
        volatile uint8_t last = r.values[r.values_len ? r.values_len - 1 : 0];
        (void)last;
    } else if (rc != FR_E_UNKNOWN_VIEW && (!why || !*why)) {
        abort(); /* a refusal must say why */
    }
    free(msg);
    return 0;
}
