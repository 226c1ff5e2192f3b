/* Fuzz target for the row key codec: whatever fr_key_decode accepts must re-encode to the very same
 * bytes, start with its own (view, entity) prefix and keep its entity inside the key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "store/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_key_t k;
    if (fr_key_decode(data, size, &k) != 0)
        return 0;
    CHECK(k.entity_len <= FR_ENTITY_MAX);
    CHECK(size == 6u + k.entity_len + 16u);
    CHECK(k.entity == data + 6);
    CHECK(k.event_ts_us >= 0);
    uint8_t out[FR_KEY_MAX];
    size_t n = fr_key_encode(out, k.view_id, k.entity, k.entity_len, k.event_ts_us, k.write_seq);
    CHECK(n == size);
    CHECK(memcmp(out, data, n) == 0);
    uint8_t prefix[FR_KEY_PREFIX_MAX];
    size_t pn = fr_key_prefix(prefix, k.view_id, k.entity, k.entity_len);
    CHECK(pn + 16 == n && memcmp(prefix, data, pn) == 0);
    return 0;
}
