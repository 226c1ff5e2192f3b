/* fr_ingest_decode_row: what the NATS consumer does with each stream message. A good Row becomes a
 * write row pointing into the message; an unknown view is reported as such (the consumer waits for
 * an apply instead of dropping it); anything that can never apply is refused with a reason (the
 * consumer skips it as poison and counts it). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "freshet/err.h"
#include "proto/frame.h"
#include "server/ingest.h"

static const char REGISTRY[] =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"1h\", \"features\": ["
    "{\"name\": \"n\", \"type\": \"int64\"}, {\"name\": \"x\", \"type\": \"double\"}]}]}";
#define NOW 1795860000000000LL

static fr_registry_t *reg;

static void setup(void)
{
    const char *why = "";
    cr_assert_eq(fr_registry_parse(REGISTRY, strlen(REGISTRY), &reg, &why), FR_OK, "%s", why);
}

static void teardown(void) { fr_registry_release(reg); }

/* A Row message with the given fields (entity/values NULL: absent); returns its length. */
static size_t row_msg(uint8_t *out, size_t cap, const char *view, const char *entity, int64_t ts,
                      const void *values, size_t values_len)
{
    freshet_Row row = freshet_Row_init_zero;
    if (view) {
        row.has_view = true;
        snprintf(row.view, sizeof row.view, "%s", view);
    }
    fr_pb_bytes_t ent = {(const uint8_t *)entity, entity ? strlen(entity) : 0};
    fr_pb_bytes_t vals = {values, values_len};
    if (entity) {
        row.entity.funcs.encode = fr_pb_encode_bytes;
        row.entity.arg = &ent;
    }
    if (values) {
        row.values.funcs.encode = fr_pb_encode_bytes;
        row.values.arg = &vals;
    }
    row.has_event_ts_us = true;
    row.event_ts_us = ts;
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    cr_assert(pb_encode(&os, freshet_Row_fields, &row), "encode: %s", PB_GET_ERROR(&os));
    return os.bytes_written;
}

/* msgpack [n, x] */
static size_t values_of(char *out, int64_t n, const char *x_as_string)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int64(&pk, n);
    if (x_as_string) {
        msgpack_pack_str(&pk, strlen(x_as_string));
        msgpack_pack_str_body(&pk, x_as_string, strlen(x_as_string));
    } else {
        msgpack_pack_double(&pk, 0.5);
    }
    memcpy(out, sb.data, sb.size);
    size_t n_out = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n_out;
}

TestSuite(ingest_decode, .init = setup, .fini = teardown);

Test(ingest_decode, good_row_points_into_the_message)
{
    char vals[64];
    size_t vlen = values_of(vals, 7, NULL);
    uint8_t msg[256];
    size_t len = row_msg(msg, sizeof msg, "v", "c1", NOW - 5, vals, vlen);
    fr_write_row_t r;
    char view[FR_INGEST_VIEW_MAX];
    const char *why = "unset";
    cr_assert_eq(fr_ingest_decode_row(reg, msg, len, NOW, 3600000000LL, &r, view, &why), FR_OK,
                 "%s", why);
    cr_assert_str_eq(r.view->name, "v");
    cr_assert_eq(r.entity_len, 2);
    cr_assert(memcmp(r.entity, "c1", 2) == 0);
    cr_assert(r.entity >= msg && r.entity < msg + len, "entity points into the message");
    cr_assert_eq(r.event_ts_us, NOW - 5);
    cr_assert_eq(r.values_len, vlen);
    cr_assert(memcmp(r.values, vals, vlen) == 0);
}

Test(ingest_decode, unknown_view_is_reported_by_name_not_as_poison)
{
    char vals[64];
    size_t vlen = values_of(vals, 7, NULL);
    uint8_t msg[256];
    size_t len = row_msg(msg, sizeof msg, "later", "c1", NOW, vals, vlen);
    fr_write_row_t r;
    char view[FR_INGEST_VIEW_MAX];
    const char *why = NULL;
    cr_assert_eq(fr_ingest_decode_row(reg, msg, len, NOW, 3600000000LL, &r, view, &why),
                 FR_E_UNKNOWN_VIEW);
    cr_assert_str_eq(view, "later");
}

static void expect_poison(const uint8_t *msg, size_t len, const char *needle)
{
    fr_write_row_t r;
    char view[FR_INGEST_VIEW_MAX];
    const char *why = NULL;
    int rc = fr_ingest_decode_row(reg, msg, len, NOW, 3600000000LL, &r, view, &why);
    cr_assert_eq(rc, FR_E_BAD_REQUEST, "%s", fr_err_name(rc));
    cr_assert(why && *why, "no reason given");
    cr_assert(strstr(why, needle), "reason \"%s\" lacks \"%s\"", why, needle);
}

Test(ingest_decode, poison_is_refused_with_a_reason)
{
    char vals[64], bad[64];
    size_t vlen = values_of(vals, 7, NULL), blen = values_of(bad, 7, "not a double");
    uint8_t msg[256];
    const uint8_t truncated[] = {0x0a, 0xff, 0x01}; /* a view field claiming 255 bytes */
    expect_poison(truncated, sizeof truncated, "");
    expect_poison(msg, row_msg(msg, sizeof msg, "v", NULL, NOW, vals, vlen),
                  "entity and values are required");
    expect_poison(msg, row_msg(msg, sizeof msg, "v", "c1", NOW, bad, blen), "values.x: expected double");
    expect_poison(msg, row_msg(msg, sizeof msg, "v", "c1", NOW + 7200000000LL, vals, vlen), "");
}
