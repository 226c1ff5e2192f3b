/* Freshet error codes.
 *
 * Every fallible Freshet function returns an fr_err_t: FR_OK (0) on success, a negative code on
 * failure. The same codes travel on the wire (the `code` field of every response), so a client sees
 * exactly the error the server decided on. Client errors (the request was wrong: fix it, do not retry)
 * are -1..-39; server errors (the request may be fine: retry or alert) are -40 and below.
 *
 * The list is one X-macro, so the enum, fr_err_name() and fr_err_str() cannot drift apart.
 */
#ifndef FRESHET_ERR_H
#define FRESHET_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, sentence) */
#define FR_ERR_LIST(X)                                                                             \
    X(OK, 0, "success")                                                                            \
    X(BAD_REQUEST, -1, "malformed request")                                                       \
    X(UNKNOWN_VIEW, -2, "unknown feature view")                                                   \
    X(UNKNOWN_FEATURE, -3, "unknown feature")                                                     \
    X(TYPE_MISMATCH, -4, "value does not match the feature's type")                               \
    X(TOO_LARGE, -5, "frame, value or request exceeds a configured limit")                        \
    X(FUTURE_EVENT, -6, "event timestamp is beyond the allowed future skew")                      \
    X(UNAUTHORIZED, -7, "not authenticated or not allowed")                                       \
    X(BAD_REGISTRY, -8, "invalid registry definition")                                            \
    X(INCOMPATIBLE, -9, "registry change is not allowed (type change or feature removal)")        \
    X(BAD_OP, -10, "unknown operation")                                                           \
    X(BAD_ARG, -11, "invalid argument")                                                           \
    X(NOT_FOUND, -12, "not found")                                                                \
    X(BAD_MODEL, -13, "invalid or corrupt model")                                                 \
    X(UNSUPPORTED, -14, "unsupported feature of the input")                                       \
    X(NOMEM, -40, "out of memory")                                                                \
    X(STORAGE, -41, "storage error")                                                              \
    X(STORAGE_FULL, -42, "storage is full (LMDB map size reached)")                               \
    X(INTERNAL, -43, "internal error")                                                            \
    X(IO, -44, "I/O or network error")                                                            \
    X(CLOSED, -45, "connection closed")                                                           \
    X(BUSY, -46, "server busy, retry later")                                                      \
    X(TIMEOUT, -47, "timed out")                                                                  \
    X(SHUTDOWN, -48, "server is shutting down")

typedef enum {
#define FR_ERR_ENUM(name, value, text) FR_E_##name = (value),
    FR_ERR_LIST(FR_ERR_ENUM)
#undef FR_ERR_ENUM
} fr_err_t;

#define FR_OK FR_E_OK

/* The short upper-case name, e.g. "UNKNOWN_VIEW"; "UNKNOWN_ERROR" for a value not in the list. */
const char *fr_err_name(int err);

/* A one-sentence description of the code (static storage). */
const char *fr_err_str(int err);

/* Parses a name as printed by fr_err_name(); returns FR_E_BAD_ARG when unknown. */
int fr_err_from_name(const char *name);

/* True for codes a client may retry unchanged (BUSY, IO, CLOSED, TIMEOUT, SHUTDOWN). */
int fr_err_retryable(int err);

#ifdef __cplusplus
}
#endif
#endif
