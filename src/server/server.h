/* freshetd: the server (DESIGN.md, "Processes and threads").
 *
 * An acceptor (the main thread's event loop) hands each connection to one of N worker event loops
 * (memcached's model); connections never move. Reads are answered on the worker from one LMDB read
 * transaction per request. Writes are decoded and validated on the worker, then queued to the single
 * writer thread, which applies everything queued in one write transaction, commits (fsync in sync
 * mode) and hands the results back to the workers (group commit). Requests are pipelined: responses
 * carry the request id and may complete out of order. */
#ifndef FR_SERVER_SERVER_H
#define FR_SERVER_SERVER_H

#include "common/clock.h"
#include "config.h"

typedef struct fr_server fr_server_t;

/* Opens the store and binds the listeners (nothing runs yet). SIGTERM and SIGINT are the
 * server's from here on, and stay ignored after fr_server_free (the process is on its way out).
 * *why gets a sentence on failure.
 * FR_E_STORAGE, FR_E_IO (bind), FR_E_BAD_ARG (address), FR_E_NOMEM. clock may be NULL (system). */
int fr_server_new(const fr_config_t *cfg, const fr_clock_t *clock, fr_server_t **out,
                  const char **why);
/* The bound address ("127.0.0.1:40123"), valid until fr_server_free. */
const char *fr_server_listen_addr(const fr_server_t *s);
/* The bound HTTP address, or NULL when --http is not set. */
const char *fr_server_http_addr(const fr_server_t *s);
/* Starts the worker loops, the HTTP worker, the writer thread and the NATS consumer. On failure
 * everything it started is stopped again and *why gets a sentence naming the cause (the reader
 * slot case names max_readers): FR_E_BUSY (no free LMDB reader slot), FR_E_NOMEM, FR_E_INTERNAL
 * (a thread), FR_E_BAD_ARG (ingest settings). The server then only needs fr_server_free. */
int fr_server_start(fr_server_t *s, const char **why);
/* After fr_server_start: accepts and serves until SIGTERM/SIGINT or fr_server_stop, then drains:
 * stops accepting, finishes queued writes, commits, answers them, closes connections. Returns
 * FR_OK, or FR_E_INTERNAL when the server was not started. */
int fr_server_run(fr_server_t *s);
/* Asks a running server to stop (thread-safe, async-signal-unsafe). */
void fr_server_stop(fr_server_t *s);
void fr_server_free(fr_server_t *s);

#endif
