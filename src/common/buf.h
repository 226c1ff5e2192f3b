/* A growable byte buffer with an optional hard cap. Used for encoding replies and keys. */
#ifndef FR_COMMON_BUF_H
#define FR_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = unbounded; appends beyond it fail with FR_E_TOO_LARGE */
} fr_buf_t;

void fr_buf_init(fr_buf_t *b, size_t max);
void fr_buf_fini(fr_buf_t *b);
static inline void fr_buf_reset(fr_buf_t *b) { b->len = 0; }
/* Makes room for n more bytes. FR_E_NOMEM / FR_E_TOO_LARGE. */
int fr_buf_reserve(fr_buf_t *b, size_t n);
int fr_buf_append(fr_buf_t *b, const void *p, size_t n);
int fr_buf_printf(fr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Big-endian helpers for keys and frames. */
static inline void fr_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void fr_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void fr_put_be64(uint8_t *p, uint64_t v)
{
    fr_put_be32(p, (uint32_t)(v >> 32));
    fr_put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t fr_get_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t fr_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t fr_get_be64(const uint8_t *p)
{
    return ((uint64_t)fr_get_be32(p) << 32) | fr_get_be32(p + 4);
}

/* Little-endian helpers for packed float runs (proto/mp.h), the write-ahead log (store/wal.h)
 * and model artifacts. */
static inline void fr_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t fr_get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void fr_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void fr_put_le64(uint8_t *p, uint64_t v)
{
    fr_put_le32(p, (uint32_t)v);
    fr_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t fr_get_le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline uint64_t fr_get_le64(const uint8_t *p)
{
    return ((uint64_t)fr_get_le32(p + 4) << 32) | fr_get_le32(p);
}

#endif
