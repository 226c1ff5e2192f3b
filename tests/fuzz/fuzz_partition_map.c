/* Fuzz target: the partition map of cluster reads (fr_cluster_open_json) and partition set text
 * (fr_partset_parse). No connection is made by opening a map. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/partset.h"
#include "freshet/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_cluster_t *cl = NULL;
    char err[256];
    if (fr_cluster_open_json((const char *)data, size, NULL, &cl, err, sizeof err) == FR_OK) {
        for (uint32_t p = 0; p < fr_cluster_partition_count(cl) && p < 64; p++)
            (void)fr_cluster_node_for(cl, p);
        fr_cluster_free(cl);
    }
    char text[256];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    bool member[64];
    fr_partset_parse(text, 64, member, err, sizeof err);
    return 0;
}
