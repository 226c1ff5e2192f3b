/* freshet-infer: the inference worker (DESIGN.md, "freshet-infer").
 *
 * Loads one compiled model, binds its inputs to freshetd features (the artifact's feature map) or
 * to request-time values, and answers Score requests on a binary-protocol listener (same framing
 * as freshetd, op OP_SCORE) and, optionally, `POST /v1/score` JSON on an HTTP listener. An acceptor
 * (the main thread's event loop) hands each binary connection to one of N worker event loops; every
 * worker also serves HTTP from the shared HTTP socket and owns one libfreshet connection to
 * freshetd (reconnected after a failure), so a request's fetch is one pipelined batch on the
 * worker's own connection. SIGTERM/SIGINT stop accepting, flush replies and exit. */
#ifndef FR_INFER_INFER_H
#define FR_INFER_INFER_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    char model[512];
    char server[128]; /* freshetd HOST:PORT */
    char listen[128]; /* binary protocol HOST:PORT */
    char http[128];   /* HTTP HOST:PORT; empty = off */
    char log_level[16];
    int64_t threads;
    int64_t busy_poll_us;
    int64_t max_missing; /* rows with more missing inputs are rejected; -1 = no limit */
    int64_t max_rows;    /* rows per Score request */
    int64_t fetch_batch; /* rows per Get frame sent to freshetd (frames are pipelined) */
    int64_t timeout_ms;  /* freshetd connect/read timeout */
    int64_t max_frame;   /* largest request frame body */
    int64_t max_body;    /* largest HTTP request body */
} fr_infer_config_t;

/* Fills the defaults, then parses argv (--name value or --name=value). Returns FR_OK, FR_E_BAD_ARG
 * with a sentence in why, or 1 when --help was printed to out. */
int fr_infer_config_parse(fr_infer_config_t *cfg, int argc, char **argv, FILE *out, char *why,
                          size_t why_len);

typedef struct fr_infer fr_infer_t;

/* Loads the model, checks every binding against freshetd's registry (each bound view and feature
 * must exist and be numeric: int64, double, float or bool), binds the listeners. Nothing runs yet.
 * FR_E_BAD_MODEL/IO (model), FR_E_UNKNOWN_VIEW/UNKNOWN_FEATURE/TYPE_MISMATCH (bindings), FR_E_IO
 * (freshetd unreachable, bind failed), FR_E_BAD_ARG (address), FR_E_NOMEM. why gets a sentence. */
int fr_infer_new(const fr_infer_config_t *cfg, fr_infer_t **out, char *why, size_t why_len);
/* Bound addresses ("127.0.0.1:40123"); the HTTP one is "" when off. Valid until fr_infer_free. */
const char *fr_infer_listen_addr(const fr_infer_t *s);
const char *fr_infer_http_addr(const fr_infer_t *s);
/* Runs until SIGTERM/SIGINT, then drains and returns FR_OK or the first fatal error. */
int fr_infer_run(fr_infer_t *s);
void fr_infer_free(fr_infer_t *s);

#endif
