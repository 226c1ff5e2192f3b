/* Partition sets written as text: "0-7", "0,2,5", "0-3,8,10-11" (README, "Scaling out"). Shared by
 * freshetd's `partitions` key and libfreshet's partition maps. */
#ifndef FR_COMMON_PARTSET_H
#define FR_COMMON_PARTSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text into member[0..count-1] (true = in the set; the array is cleared first). Empty text
 * means every partition. Returns 0, or -1 with a sentence in why (size why_len) naming the bad
 * element (not a number, a range backwards, a partition >= count). */
int fr_partset_parse(const char *text, uint32_t count, bool *member, char *why, size_t why_len);

#endif
