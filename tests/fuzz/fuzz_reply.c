/* Fuzz target: libfreshet's decoders of server replies. A client must survive a broken or hostile
 * server: every reply is bounded, checked, and either decoded or refused with an error, never a
 * crash or an overread. The input's first byte picks the call (Get/Export result, Status,
 * Sources, Hello), the rest is the reply body; it is framed with the id and op the client expects
 * and read by the real client code from a socketpair. A decoded result is walked cell by cell, as
 * a caller would; Get and Export replies are read twice on one connection, so the second decode
 * goes through the column cache. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_int.h"
#include "freshet/err.h"
#include "freshet.pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first request (if the call sends one) gets id 1, as the crafted reply says. */
static fr_client_t *client_on(int fd)
{
    fr_client_t *c = fr_client_alloc(fd, 2000);
    if (!c)
        abort();
    return c;
}

static double walk_result(const fr_result_t *r)
{
    double sink = 0;
    size_t ne = fr_result_entity_count(r), nf = fr_result_feature_count(r);
    for (size_t j = 0; j < nf; j++) {
        const char *name = fr_result_feature_name(r, j);
        sink += name ? (double)strlen(name) : 0;
        sink += (double)fr_result_feature_type(r, j);
    }
    for (size_t i = 0; i < ne; i++) {
        size_t len = 0;
        const char *ent = fr_result_entity(r, i, &len);
        if (ent && len)
            sink += (unsigned char)ent[len - 1];
        for (size_t j = 0; j < nf; j++) {
            fr_value_t v;
            int st;
            int64_t ts;
            if (fr_result_cell(r, i, j, &v, &st, &ts) != FR_OK)
                continue;
            sink += st + (double)(ts & 1) + (double)(fr_result_written_at(r, i, j) & 1);
            if ((v.type == FR_TYPE_STRING || v.type == FR_TYPE_BYTES) && v.len)
                sink += (unsigned char)v.u.str[v.len - 1]; /* reads the last byte: ASan checks */
            else if (v.type == FR_TYPE_FLOAT_LIST && v.len)
                sink += v.u.floats[v.len - 1];
        }
    }
    /* the float matrix must agree with the cells: same status, the number or NAN */
    float *m = malloc((ne * nf ? ne * nf : 1) * sizeof *m);
    uint8_t *ms = malloc(ne * nf ? ne * nf : 1);
    if (m && ms && fr_result_floats(r, NAN, m, ms) == FR_OK)
        for (size_t i = 0; i < ne; i++)
            for (size_t j = 0; j < nf; j++) {
                fr_value_t v;
                int st;
                if (fr_result_cell(r, i, j, &v, &st, NULL) != FR_OK)
                    continue;
                float x = m[i * nf + j];
                float want = v.type == FR_TYPE_FLOAT    ? v.u.f32
                             : v.type == FR_TYPE_DOUBLE ? (float)v.u.f64
                             : v.type == FR_TYPE_INT64  ? (float)v.u.i64
                             : v.type == FR_TYPE_BOOL   ? (float)v.u.b
                                                        : NAN;
                if (ms[i * nf + j] != st || (memcmp(&x, &want, 4) && !(isnan(x) && isnan(want))))
                    abort();
                sink += ms[i * nf + j];
            }
    free(m);
    free(ms);
    size_t clen = 0;
    const void *cur = fr_result_next_cursor(r, &clen);
    if (cur && clen)
        sink += ((const unsigned char *)cur)[clen - 1];
    return sink + (double)fr_result_done(r) + (double)fr_result_snapshot(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) /* the reply must fit in the socket buffer before it is read */
        return 0;
    static const uint16_t ops[] = {freshet_Op_OP_GET, freshet_Op_OP_EXPORT, freshet_Op_OP_STATUS,
                                   freshet_Op_OP_SOURCES, freshet_Op_OP_HELLO};
    unsigned call = data[0] % (sizeof ops / sizeof ops[0]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    /* Get/Export replies go twice (ids 1 and 2): the second one meets the columns cached from
     * the first, the path a real client takes on every repeated read */
    for (uint32_t id = 1; id <= (call <= 1 ? 2u : 1u); id++) {
        uint8_t hdr[FR_FRAME_HEADER];
        fr_frame_encode(hdr, (uint32_t)(size - 1), id, (uint16_t)(ops[call] | FR_OP_RESPONSE));
        if (write(sv[1], hdr, sizeof hdr) != (ssize_t)sizeof hdr ||
            (size > 1 && write(sv[1], data + 1, size - 1) != (ssize_t)(size - 1)))
            abort();
    }
    shutdown(sv[1], SHUT_WR); /* a reply cut short reads EOF, not a hang */
    fr_client_t *c = client_on(sv[0]);
    volatile double sink = 0;
    if (call <= 1) {
        for (uint32_t id = 1; id <= 2; id++) {
            fr_result_t *r = NULL;
            int rc = call == 0 ? fr_client_get_recv(c, id, &r) : fr_client_export_recv(c, id, &r);
            if (rc == FR_OK)
                sink += walk_result(r);
            fr_result_free(r);
            if (rc == FR_E_IO || rc == FR_E_CLOSED || rc == FR_E_TIMEOUT || rc == FR_E_INTERNAL)
                break; /* the stream is out of step: the second reply cannot be read */
        }
    } else if (call == 2) {
        fr_server_status_t st;
        if (fr_client_status(c, &st) == FR_OK) {
            for (size_t i = 0; i < st.view_count; i++)
                sink += (double)strlen(st.views[i].name);
            fr_server_status_fini(&st);
        }
    } else if (call == 3) {
        fr_source_pos_t *pos = NULL;
        size_t n = 0;
        if (fr_client_sources(c, &pos, &n) == FR_OK)
            for (size_t i = 0; i < n; i++)
                sink += (double)strlen(pos[i].source) + (double)pos[i].offset;
        free(pos);
    } else {
        sink += fr_client_hello(c, "token") == FR_OK ? (double)strlen(fr_client_role(c)) : 0;
    }
    (void)sink;
    fr_client_free(c); /* closes sv[0] */
    close(sv[1]);
    return 0;
}
