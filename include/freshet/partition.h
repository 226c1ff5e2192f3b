/* The partition function shared by every Freshet client, the CLI and freshetd (README, "Scaling
 * out"). An entity's partition is FNV-1a 32-bit of its bytes (the entity id exactly as written,
 * e.g. the decimal text of an integer id) modulo the partition count P:
 *
 *     h = 2166136261; for each byte b: h = (h ^ b) * 16777619 (mod 2^32); partition = h % P
 *
 * Rows are published to subject `freshet.<view>.<partition>`; a node consuming partitions S serves
 * reads for exactly the entities whose partition is in S. Every writer and reader of one cluster
 * must use the same P. Header-only so that any language binding can copy it verbatim.
 */
#ifndef FRESHET_PARTITION_H
#define FRESHET_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FNV-1a 32-bit of len bytes at p. */
static inline uint32_t fr_partition_hash(const void *p, size_t len)
{
    const unsigned char *b = (const unsigned char *)p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

/* Partition of an entity among partition_count (> 0) partitions. */
static inline uint32_t fr_partition_of(const void *entity, size_t len, uint32_t partition_count)
{
    return partition_count ? fr_partition_hash(entity, len) % partition_count : 0;
}

#ifdef __cplusplus
}
#endif
#endif
