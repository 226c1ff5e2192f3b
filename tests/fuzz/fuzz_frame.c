/* Fuzz target: every request decoder of freshetd, through the real dispatch table. The input's
 * first two bytes are the op, the rest is the frame body; it is handed to fr_handle_frame on a
 * worker of a real server (real LMDB store in a temp dir, a registry applied) whose connection has
 * no socket, so replies are encoded and dropped. Writes are refused at the queue (the writer is
 * stopped), so every Put still goes through decoding and validation. Backup is skipped: it copies
 * the store to a path taken from the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "fuzz_server.h"

static fr_conn_t conn;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_srv) {
        fuzz_server_setup();
        conn.worker = &fuzz_worker;
    }
    if (size < 2)
        return 0;
    fr_frame_t f = {.body_len = (uint32_t)(size - 2), .request_id = 7,
                    .op = (uint16_t)((data[0] << 8) | data[1])};
    if (f.op == freshet_Op_OP_BACKUP)
        return 0;
    uint8_t *body = malloc(size - 2 ? size - 2 : 1); /* exact size: ASan sees any overread */
    memcpy(body, data + 2, size - 2);
    fr_handle_frame(&fuzz_worker, &conn, &f, body);
    free(body);
    fr_conn_export_end(&conn);
    return 0;
}
