/* Row key codec (layout in key.h). */
#include <string.h>

#include "common/buf.h"
#include "key.h"

size_t fr_key_prefix(uint8_t *out, uint32_t view_id, const uint8_t *entity, size_t entity_len)
{
    fr_put_be32(out, view_id);
    fr_put_be16(out + 4, (uint16_t)entity_len);
    if (entity_len)
        memcpy(out + 6, entity, entity_len);
    return 6 + entity_len;
}

size_t fr_key_encode(uint8_t *out, uint32_t view_id, const uint8_t *entity, size_t entity_len,
                     int64_t event_ts_us, uint64_t write_seq)
{
    size_t n = fr_key_prefix(out, view_id, entity, entity_len);
    fr_put_be64(out + n, UINT64_MAX - (uint64_t)event_ts_us);
    fr_put_be64(out + n + 8, UINT64_MAX - write_seq);
    return n + 16;
}

int fr_key_decode(const uint8_t *key, size_t len, fr_key_t *out)
{
    if (len < 6 + 16)
        return -1;
    uint16_t elen = fr_get_be16(key + 4);
    if (elen > FR_ENTITY_MAX || len != 6u + elen + 16u)
        return -1;
    uint64_t inv_ts = fr_get_be64(key + 6 + elen);
    if (inv_ts < UINT64_MAX - (uint64_t)INT64_MAX)
        return -1; /* would decode to a negative event time */
    out->view_id = fr_get_be32(key);
    out->entity_len = elen;
    out->entity = key + 6;
    out->event_ts_us = (int64_t)(UINT64_MAX - inv_ts);
    out->write_seq = UINT64_MAX - fr_get_be64(key + 6 + elen + 8);
    return 0;
}
