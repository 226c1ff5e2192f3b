/* The `freshet` command-line tool's commands. Each returns a process exit code: 0 success,
 * 1 the server or the input refused (message on stderr), 2 usage error. */
#ifndef FR_CLI_CLI_H
#define FR_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct {
    const char *server; /* HOST:PORT */
    int argc;           /* arguments after the command name */
    char **argv;
    /* connection security (--token/FRESHET_TOKEN, --tls/FRESHET_TLS=1, --tls-ca/FRESHET_TLS_CA,
     * --tls-insecure/FRESHET_TLS_INSECURE=1), used by fr_cli_connect */
    const char *token;
    int tls;
    const char *tls_ca;
    int tls_insecure;
} fr_cli_ctx_t;

int fr_cli_apply(fr_cli_ctx_t *ctx);
int fr_cli_put(fr_cli_ctx_t *ctx);
int fr_cli_get(fr_cli_ctx_t *ctx);
int fr_cli_status(fr_cli_ctx_t *ctx);
int fr_cli_sources(fr_cli_ctx_t *ctx);
/* stream.c: `freshet stream info|create --nats URL` (the JetStream stream of scale-out ingest). */
int fr_cli_stream(fr_cli_ctx_t *ctx);
int fr_cli_backup(fr_cli_ctx_t *ctx);
/* token.c: `freshet token new NAME ROLE` prints a fresh token and its auth-file line (no server). */
int fr_cli_token(fr_cli_ctx_t *ctx);

/* Helpers shared by the commands. */
/* Prints "freshet: NAME: sentence" to stderr and returns 1 (or 2 for usage errors). */
int fr_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a timestamp for --as-of: RFC 3339, integer microseconds, "now", or "-90s"/"-1h" relative
 * to now. Returns 0 or -1. */
int fr_cli_parse_time(const char *s, int64_t now_us, int64_t *out_us);
/* Parses a flag's number: decimal digits only (no sign, blanks, suffix or overflow), within
 * [min, max]. Returns 0 or -1. */
int fr_cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* fr_cli_parse_uint of flag's value v, or prints a usage error naming the flag and the range.
 * Returns 0 or 2 (the exit code). */
int fr_cli_flag_uint(const char *flag, const char *v, uint64_t min, uint64_t max, uint64_t *out);
/* Returns argv[i+1] for flag argv[i] or prints a usage error. */
const char *fr_cli_flag_value(fr_cli_ctx_t *ctx, int *i);
/* Connects or prints the error. */
/* JSON text output (jsonout.c). */
#include "freshet/types.h"
void fr_cli_json_str(FILE *out, const char *s, size_t n);
void fr_cli_json_value(FILE *out, const fr_value_t *v);
/* Writes an int64, double, float or bool value the way both CSV and JSON spell it; false (and
 * nothing written) for the other types, whose spelling differs between the two. */
bool fr_cli_scalar_value(FILE *out, const fr_value_t *v);
/* "nan", "inf" or "-inf" for a non-finite double or float, else NULL. CSV and tables spell them
 * so (pandas.read_csv and strtod read them back), so a training export keeps the infinity an
 * online read returns; JSON has neither and writes null. */
const char *fr_cli_nonfinite_text(const fr_value_t *v);

/* Splits one CSV line (RFC 4180 quoting) into at most max fields, in place. Returns the count, or
 * -1 on a malformed line or too many fields. */
int fr_cli_csv_split(char *line, char **fields, int max);
/* The `put` input decoder on one line (after the CSV header when csv), against a view with the
 * given features: 0, or -1 with a sentence naming the column in why. Both strings are modified.
 * The per-line function of fr_cli_put, exposed for its fuzz target. */
int fr_cli_put_decode(const char *view, const char *join_key, size_t nfeat,
                      const char *const *names, const fr_type_t *types, bool csv, bool with_source,
                      char *header, char *line, char *why, size_t why_len);
/* Removes trailing newline characters. */
void fr_cli_chomp(char *s);
/* Reads one CSV record with getline's buffer contract: a line, joined with the lines after it
 * while a quoted field is still open (RFC 4180 lets a quoted field hold line breaks, and the
 * CLI's own CSV output writes them), up to FR_CLI_CSV_RECORD_MAX bytes. Returns the record's
 * length (its line breaks kept) or -1 at end of input; *lines counts the lines read. */
#define FR_CLI_CSV_RECORD_MAX (64u << 20)
ssize_t fr_cli_csv_record(char **buf, size_t *cap, FILE *in, size_t *lines);
/* True when s has a quoted field that does not close (an odd number of '"'). */
bool fr_cli_csv_open_quote(const char *s);
/* Skips a UTF-8 byte order mark at the start of a header line (spreadsheets write one). */
char *fr_cli_skip_bom(char *s);

int fr_cli_export(fr_cli_ctx_t *ctx);
/* score.c: `freshet score` against freshet-infer (--server is the infer address). */
int fr_cli_score(fr_cli_ctx_t *ctx);
/* predict.c: `freshet predict --model M --csv F`, offline, no server. */
int fr_cli_predict(fr_cli_ctx_t *ctx);

struct fr_client;
int fr_cli_connect(fr_cli_ctx_t *ctx, struct fr_client **out);

#endif
