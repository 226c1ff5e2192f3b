/* Framing and shared nanopb helpers. */
#include <string.h>

#include "frame.h"
#include "freshet/err.h"

int fr_frame_decode(const uint8_t *p, uint32_t max_body, fr_frame_t *out)
{
    out->body_len = fr_get_be32(p);
    out->request_id = fr_get_be32(p + 4);
    out->op = fr_get_be16(p + 8);
    return out->body_len > max_body ? FR_E_TOO_LARGE : FR_OK;
}

void fr_frame_encode(uint8_t *p, uint32_t body_len, uint32_t request_id, uint16_t op)
{
    fr_put_be32(p, body_len);
    fr_put_be32(p + 4, request_id);
    fr_put_be16(p + 8, op);
}

static _Thread_local const uint8_t *decode_base;
static _Thread_local size_t decode_len;

pb_istream_t fr_pb_istream(const uint8_t *buf, size_t len)
{
    decode_base = buf;
    decode_len = len;
    return pb_istream_from_buffer(buf, len);
}

bool fr_pb_take_bytes(pb_istream_t *stream, const uint8_t **ptr, size_t *len)
{
    /* Memory streams (pb_istream_from_buffer) keep the read position in `state`. */
    const uint8_t *p = (const uint8_t *)stream->state;
    if (!decode_base || p < decode_base || stream->bytes_left > decode_len ||
        p > decode_base + (decode_len - stream->bytes_left))
        PB_RETURN_ERROR(stream, "bytes field with a wrong wire type");
    *ptr = p;
    *len = stream->bytes_left;
    return pb_read(stream, NULL, stream->bytes_left);
}

const char *fr_pb_why(const pb_istream_t *stream)
{
    return stream->errmsg ? stream->errmsg : "malformed protobuf: a field with the wrong wire type";
}

bool fr_pb_encode_bytes(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_pb_bytes_t *b = *arg;
    if (!b || !b->ptr)
        return true;
    return pb_encode_tag_for_field(stream, field) &&
           pb_encode_string(stream, (const pb_byte_t *)b->ptr, b->len);
}

static bool buf_write(pb_ostream_t *stream, const pb_byte_t *data, size_t count)
{
    return fr_buf_append((fr_buf_t *)stream->state, data, count) == FR_OK;
}

int fr_frame_encode_msg(fr_buf_t *buf, uint32_t request_id, uint16_t op, const pb_msgdesc_t *fields,
                        const void *msg)
{
    size_t start = buf->len;
    uint8_t hdr[FR_FRAME_HEADER] = {0};
    int rc = fr_buf_append(buf, hdr, sizeof hdr);
    if (rc != FR_OK)
        return rc;
    pb_ostream_t os = {.callback = buf_write, .state = buf, .max_size = SIZE_MAX};
    if (!pb_encode(&os, fields, msg)) {
        buf->len = start;
        return FR_E_INTERNAL;
    }
    fr_frame_encode(buf->data + start, (uint32_t)(buf->len - start - FR_FRAME_HEADER), request_id,
                    op);
    return FR_OK;
}
