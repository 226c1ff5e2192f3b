/* Wire framing: u32 body_length · u32 request_id · u16 op · body (big-endian), and the nanopb
 * helpers every codec uses. Pure functions; no I/O. */
#ifndef FR_PROTO_FRAME_H
#define FR_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "common/buf.h"
#include "freshet.pb.h"

#define FR_FRAME_HEADER 10
#define FR_OP_RESPONSE 0x8000u

typedef struct {
    uint32_t body_len;
    uint32_t request_id;
    uint16_t op;
} fr_frame_t;

/* Decodes a header from at least FR_FRAME_HEADER bytes. Returns FR_OK, or FR_E_TOO_LARGE when
 * body_len > max_body (framing is then lost: the connection must close). */
int fr_frame_decode(const uint8_t *p, uint32_t max_body, fr_frame_t *out);
void fr_frame_encode(uint8_t *p, uint32_t body_len, uint32_t request_id, uint16_t op);

/* A nanopb input stream over buf that also records buf's bounds for fr_pb_take_bytes on this
 * thread. Use it (not pb_istream_from_buffer) for every message with zero-copy bytes callbacks. */
pb_istream_t fr_pb_istream(const uint8_t *buf, size_t len);

/* nanopb: the bytes of a length-delimited field, zero-copy, from a stream made by fr_pb_istream.
 * Fails (decode error) when the field arrived with another wire type: nanopb then copies the
 * scalar to its own stack and hands the callback a stream over that copy, which must not escape. */
bool fr_pb_take_bytes(pb_istream_t *stream, const uint8_t **ptr, size_t *len);
/* The decoder's reason a stream failed. nanopb drops the reason of a callback that fails on a
 * scalar (a varint where bytes belong): then this names that case instead of "(none)". */
const char *fr_pb_why(const pb_istream_t *stream);

/* Encode callbacks; arg points to a fr_pb_bytes_t. */
typedef struct {
    const void *ptr;
    size_t len;
} fr_pb_bytes_t;
bool fr_pb_encode_bytes(pb_ostream_t *stream, const pb_field_t *field, void *const *arg);

/* Encodes msg (fields) as a complete frame appended to buf. FR_E_NOMEM / FR_E_INTERNAL. */
int fr_frame_encode_msg(fr_buf_t *buf, uint32_t request_id, uint16_t op, const pb_msgdesc_t *fields,
                        const void *msg);

#endif
