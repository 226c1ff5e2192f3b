/* Freshet value types and read statuses, shared by the server, the C client and the tools.
 *
 * A feature has one of the FR_TYPE_* types and is always nullable. A read returns, for every
 * (entity, feature) cell, a status, the event timestamp of the version it came from and, when the
 * status allows, the value. Timestamps are microseconds since the Unix epoch (UTC) in int64_t.
 */
#ifndef FRESHET_TYPES_H
#define FRESHET_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, registry spelling) */
#define FR_TYPE_LIST(X)                                                                            \
    X(INT64, 1, "int64")                                                                           \
    X(DOUBLE, 2, "double")                                                                         \
    X(FLOAT, 3, "float")                                                                           \
    X(BOOL, 4, "bool")                                                                             \
    X(STRING, 5, "string")                                                                         \
    X(BYTES, 6, "bytes")                                                                           \
    X(FLOAT_LIST, 7, "float_list")

typedef enum {
    FR_TYPE_NONE = 0,
#define FR_TYPE_ENUM(name, value, text) FR_TYPE_##name = (value),
    FR_TYPE_LIST(FR_TYPE_ENUM)
#undef FR_TYPE_ENUM
} fr_type_t;

/* "int64", "float_list", ...; "none" for anything else. */
const char *fr_type_name(int type);
/* Inverse of fr_type_name(); FR_TYPE_NONE when unknown. */
fr_type_t fr_type_from_name(const char *name);

/* Read status of one value (DESIGN.md, Semantics 2). The numbers are on the wire. */
#define FR_STATUS_LIST(X)                                                                          \
    X(NOT_FOUND, 0)                                                                                \
    X(PRESENT, 1)                                                                                  \
    X(EXPIRED, 2)                                                                                  \
    X(NULL, 3)

typedef enum {
#define FR_STATUS_ENUM(name, value) FR_STATUS_##name = (value),
    FR_STATUS_LIST(FR_STATUS_ENUM)
#undef FR_STATUS_ENUM
} fr_status_t;

/* "PRESENT", "EXPIRED", "NOT_FOUND", "NULL"; "UNKNOWN" otherwise. */
const char *fr_status_name(int status);

/* A typed value. Pointers (str, bytes, floats) are borrowed: who owns them is said by the function
 * that produced the value (for read results: the result object, until it is freed). */
typedef struct {
    fr_type_t type;  /* FR_TYPE_NONE means null */
    uint32_t len;    /* bytes for STRING/BYTES, element count for FLOAT_LIST */
    union {
        int64_t i64;
        double f64;
        float f32;
        int b;
        const char *str;
        const uint8_t *bytes;
        const float *floats; /* may be unaligned only if produced by fr_value_*; read results align */
    } u;
} fr_value_t;

#ifdef __cplusplus
}
#endif
#endif
