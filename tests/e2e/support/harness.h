/* End-to-end test harness: runs the real freshetd as a child process on an ephemeral port with a
 * temporary data directory, runs the `freshet` CLI, and speaks raw frames for protocol tests.
 *
 * A fr_e2e_server_t owns one temporary directory (/tmp/freshet-e2e-XXXXXX) holding the LMDB
 * environment (data/) and the server's stderr (server.log, appended across restarts). Starting waits
 * for the `listening HOST:PORT` line with poll() and a deadline, never with a fixed sleep. Every
 * function returns 0 on success and -1 on failure with a reason on stderr; tests assert on that.
 *
 * Live servers are remembered so that E2E_ASSERT can print their logs when a check fails, and so
 * that a test that dies early does not leave a freshetd running (fr_e2e_server_free kills it).
 * Not thread-safe: call the server functions from the test's main thread only.
 */
#ifndef FR_E2E_HARNESS_H
#define FR_E2E_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <criterion/criterion.h>

#include "freshet/client.h"

#define FR_E2E_MAX_ARGS 32

typedef struct {
    char dir[128];      /* the temporary directory */
    char data[192];     /* dir/data: the LMDB environment */
    char log_path[192]; /* dir/server.log: the server's stderr */
    char addr[128];     /* HOST:PORT from the `listening` line */
    char http_addr[128]; /* HOST:PORT from the `http` line (started with --http), else "" */
    pid_t pid;          /* 0 when not running */
    int out_fd;         /* read end of the server's stdout, kept open while it runs */
    char *args[FR_E2E_MAX_ARGS];
    size_t arg_count;
} fr_e2e_server_t;

/* Creates a temporary directory and starts freshetd on it with `--listen 127.0.0.1:0` and extra_args
 * (NULL-terminated, may be NULL), e.g. {"--durability", "sync", NULL}. Returns a server or NULL. */
fr_e2e_server_t *fr_e2e_server_start(const char *const *extra_args);
/* Starts the server again on the same directory with the same arguments (after stop or kill). A
 * new port is chosen; s->addr is updated. */
int fr_e2e_server_restart(fr_e2e_server_t *s);
/* SIGTERM and waitpid (bounded); returns the exit status (0 = clean), or -1 if it had to be killed
 * or did not exit normally. */
int fr_e2e_server_stop(fr_e2e_server_t *s);
/* Waits up to timeout_ms for a server the test itself signalled to exit, without signalling it
 * again. Returns the exit status as fr_e2e_server_stop does, -1 on timeout. */
int fr_e2e_server_wait(fr_e2e_server_t *s, int timeout_ms);
/* SIGKILL and waitpid: a crash. Returns 0. */
int fr_e2e_server_kill(fr_e2e_server_t *s);
/* Kills the server if still running, removes the directory, frees s. NULL is fine. */
void fr_e2e_server_free(fr_e2e_server_t *s);
/* Prints the logs of every live server to stderr (called by E2E_ASSERT on failure). */
void fr_e2e_dump_logs(void);
/* Lines of the file at path (a server's log) that contain needle; 0 when it cannot be read. */
int fr_e2e_lines_with(const char *path, const char *needle);

/* A client connected to s with a 20 s timeout, or NULL. */
fr_client_t *fr_e2e_connect(const fr_e2e_server_t *s);
/* Applies a registry JSON document through a fresh connection. Returns the fr_err_t. */
int fr_e2e_apply(const fr_e2e_server_t *s, const char *json, fr_apply_result_t *out);

/* ---- the freshet CLI ---- */

typedef struct {
    int exit_code; /* exit status, or 128 + signal, or -1 (could not run / timed out) */
    char *out;     /* captured stdout (NUL-terminated, malloc'ed) */
    char *err;     /* captured stderr */
} fr_e2e_cli_t;

/* Runs FR_BIN_DIR/freshet with argv (NULL-terminated, without the program name), FRESHET_SERVER
 * set to server (NULL = unset), stdin fed from stdin_text (NULL = empty). Bounded by 60 s. */
int fr_e2e_cli_run(const char *server, const char *stdin_text, const char *const *argv,
                   fr_e2e_cli_t *out);
void fr_e2e_cli_fini(fr_e2e_cli_t *r);

/* ---- time ---- */

int64_t fr_e2e_now_us(void);
/* RFC 3339 with microseconds ("2026-11-28T10:00:00.000000Z") into out[32]. */
void fr_e2e_format_time(int64_t us, char out[32]);

/* ---- raw frames ---- */

/* Connected TCP socket (blocking) to "HOST:PORT", or -1. */
int fr_e2e_raw_connect(const char *addr);
/* Writes all of buf. 0 or -1. */
int fr_e2e_raw_write(int fd, const void *buf, size_t len);
/* Builds a frame header (u32 len, u32 id, u16 op; big-endian) into hdr[10]. */
void fr_e2e_frame_header(uint8_t hdr[10], uint32_t body_len, uint32_t request_id, uint16_t op);
/* Sends header + body. 0 or -1. */
int fr_e2e_raw_send(int fd, uint32_t request_id, uint16_t op, const void *body, size_t len);
/* Reads one frame within timeout_ms. *body is malloc'ed (caller frees). Returns 0, 1 when the
 * peer closed the connection cleanly before a header, -1 on error/timeout. */
int fr_e2e_raw_recv(int fd, int timeout_ms, uint32_t *request_id, uint16_t *op, uint8_t **body,
                    size_t *len);
/* Waits until the peer closes (read returns 0 or ECONNRESET) within timeout_ms, discarding data.
 * Returns 0 when closed, -1 on timeout. */
int fr_e2e_raw_wait_closed(int fd, int timeout_ms);

/* ---- a minimal protobuf writer/reader for hand-made frames ---- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} fr_e2e_pb_t;

void fr_e2e_pb_varint(fr_e2e_pb_t *b, uint64_t v);
void fr_e2e_pb_tag(fr_e2e_pb_t *b, uint32_t field, uint32_t wire);
void fr_e2e_pb_uint(fr_e2e_pb_t *b, uint32_t field, uint64_t v);
void fr_e2e_pb_sint(fr_e2e_pb_t *b, uint32_t field, int64_t v);
void fr_e2e_pb_bytes(fr_e2e_pb_t *b, uint32_t field, const void *p, size_t n);
void fr_e2e_pb_raw(fr_e2e_pb_t *b, const void *p, size_t n);
void fr_e2e_pb_free(fr_e2e_pb_t *b);

/* One field of a protobuf message. For varints, v holds the raw varint. */
typedef struct {
    uint32_t field, wire;
    uint64_t v;
    const uint8_t *ptr;
    size_t len;
} fr_e2e_pb_field_t;

/* Iterates fields: returns 1 and fills f, 0 at the end, -1 when malformed. */
int fr_e2e_pb_next(const uint8_t **p, const uint8_t *end, fr_e2e_pb_field_t *f);
/* Extracts the response fields code (1, sint32) and message (2) every reply starts with.
 * Returns 0 (missing code = 0) or -1 when the body is not protobuf. */
int fr_e2e_pb_code(const uint8_t *body, size_t len, int *code, char *msg, size_t msg_cap);
int64_t fr_e2e_unzigzag(uint64_t v);

/* Checks fr_result_floats against fr_result_cell for every cell of r, with NAN and with a
 * finite `missing`: the same status, the cell's number converted to float where it has one,
 * `missing` where it has none. Returns the number of numeric cells; fails the test otherwise. */
size_t fr_e2e_check_floats(const fr_result_t *r);

/* Fails the test after printing the live servers' logs. A message is required. */
#define E2E_ASSERT(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fr_e2e_dump_logs();                                                                    \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

#endif
