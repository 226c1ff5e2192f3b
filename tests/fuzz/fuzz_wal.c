/* Fuzz target for the write-ahead log codecs (store/wal.h): the input is read as a log segment,
 * record after record until the first that is torn or damaged, and each record's operations are
 * decoded; every op must lie inside its record and re-encode to the very bytes it came from. The
 * same input is also read as a checkpoint file, which must re-encode identically if accepted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "fuzz_check.h"
#include "store/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        uint64_t txnid;
        const uint8_t *payload;
        size_t plen, rlen;
        if (fr_wal_rec_parse(data + off, size - off, &txnid, &payload, &plen, &rlen) !=
            FR_WAL_REC_OK)
            break;
        CHECK(rlen == FR_WAL_REC_HDR + plen && rlen <= size - off);
        CHECK(payload == data + off + FR_WAL_REC_HDR);
        fr_wal_buf_t again = {0};
        size_t pos = 0;
        fr_wal_op_t op;
        const char *why = NULL;
        int r;
        while ((r = fr_wal_op_next(payload, plen, &pos, &op, &why)) == 0) {
            CHECK(pos <= plen);
            CHECK(op.key >= payload && op.key + op.klen <= payload + plen);
            CHECK(op.val >= payload && op.val + op.vlen <= payload + plen);
            CHECK(op.klen >= 1 && op.klen <= FR_WAL_KEY_MAX && op.db < FR_WAL_DBS);
            fr_wal_buf_op(&again, op.op, op.db, op.key, op.klen, op.val, op.vlen);
        }
        CHECK(r == 1 || (r == -1 && why != NULL));
        if (r == 1 && !again.failed) {
            CHECK(again.len == plen);
            CHECK(plen == 0 || memcmp(again.p, payload, plen) == 0);
            uint8_t hdr[FR_WAL_REC_HDR];
            fr_wal_rec_header(hdr, txnid, fr_wal_rec_synced(data + off), payload, plen);
            CHECK(memcmp(hdr, data + off, FR_WAL_REC_HDR) == 0);
        }
        fr_wal_buf_free(&again);
        off += rlen;
    }
    fr_wal_ckpt_t c;
    const char *why = NULL;
    if (fr_wal_ckpt_decode(data, size, &c, &why) == FR_OK) {
        uint8_t out[FR_WAL_CKPT_LEN];
        fr_wal_ckpt_encode(&c, out);
        CHECK(size == FR_WAL_CKPT_LEN && memcmp(out, data, size) == 0);
    } else {
        CHECK(why != NULL);
    }
    return 0;
}
