/* Row keys: view_id u32 BE · entity_len u16 BE · entity · ~event_ts u64 BE · ~write_seq u64 BE.
 *
 * Big-endian and inverted timestamps make LMDB's byte order list one (view, entity)'s versions
 * newest first, so an as-of read is one MDB_SET_RANGE at prefix·~as_of·~UINT64_MAX plus a prefix
 * check. The length prefix keeps entity "ab" from colliding with entity "a" + "b...". */
#ifndef FR_STORE_KEY_H
#define FR_STORE_KEY_H

#include <stddef.h>
#include <stdint.h>

#define FR_ENTITY_MAX 256
#define FR_KEY_PREFIX_LEN(entity_len) (4 + 2 + (entity_len)) /* view id, entity length, entity */
#define FR_KEY_PREFIX_MAX FR_KEY_PREFIX_LEN(FR_ENTITY_MAX)
#define FR_KEY_MAX (FR_KEY_PREFIX_MAX + 16)

typedef struct {
    uint32_t view_id;
    const uint8_t *entity; /* points into the decoded key */
    uint16_t entity_len;
    int64_t event_ts_us;
    uint64_t write_seq;
} fr_key_t;

/* Writes the (view, entity) prefix; returns its length. entity_len <= FR_ENTITY_MAX. */
size_t fr_key_prefix(uint8_t *out, uint32_t view_id, const uint8_t *entity, size_t entity_len);
/* Writes a full key; returns its length. event_ts_us >= 0. */
size_t fr_key_encode(uint8_t *out, uint32_t view_id, const uint8_t *entity, size_t entity_len,
                     int64_t event_ts_us, uint64_t write_seq);
/* Decodes a full key. Returns 0, or -1 when the bytes are not a well-formed key. */
int fr_key_decode(const uint8_t *key, size_t len, fr_key_t *out);

#endif
