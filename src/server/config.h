/* freshetd configuration: one table drives command-line flags, the config file, validation,
 * --help and `freshet status` (STYLE.md, "Server"). Every key can be given as `--name value` on the
 * command line or as `name = value` in the file named by --config; the command line wins. */
#ifndef FR_SERVER_CONFIG_H
#define FR_SERVER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    char data[512];
    char listen[128];
    char http[128];
    char durability[16];
    char log_level[16];
    char log_file[512];
    int64_t threads;
    int64_t busy_poll_us;
    int64_t map_size_mb;
    char map_hugepages[8];
    int64_t max_readers;
    int64_t max_frame;
    int64_t max_connections;
    int64_t max_entities;
    int64_t max_features;
    int64_t max_put_rows;
    int64_t max_queue;
    int64_t max_group_rows;
    int64_t max_future_skew_us;
    int64_t sync_interval_ms;
    char wal[8];
    int64_t wal_checkpoint_mb;
    int64_t sweep_interval_ms;
    int64_t sweep_keys;
    int64_t idle_timeout_ms;
    int64_t slow_ms;
    int64_t read_timeout_ms;
    int64_t max_output_mb;
    char auth_file[512];
    int64_t metrics_auth;
    char tls_cert[512];
    char tls_key[512];
    char ingest[512];
    char stream[64];
    char partitions[256];
    int64_t partition_count;
    int64_t ingest_reset_ahead;
} fr_config_t;

typedef enum { FR_CFG_STR, FR_CFG_INT, FR_CFG_DURATION, FR_CFG_ENUM } fr_cfg_type_t;

typedef struct {
    const char *name;
    fr_cfg_type_t type;
    size_t offset;
    size_t size;         /* STR/ENUM: buffer size */
    const char *deflt;   /* as written in a config file */
    int64_t min, max;    /* INT/DURATION bounds (DURATION in microseconds) */
    const char *choices; /* ENUM: "a|b" */
    const char *doc;
} fr_cfg_item_t;

extern const fr_cfg_item_t fr_cfg_items[];
extern const size_t fr_cfg_item_count;

/* Fills every field with its default. */
void fr_config_defaults(fr_config_t *c);
/* Sets one key from text. FR_E_BAD_ARG with a sentence naming the key in why (size why_len). */
int fr_config_set(fr_config_t *c, const char *name, const char *value, char *why, size_t why_len);
/* Reads `name = value` lines ('#' comments). FR_E_BAD_ARG/FR_E_IO with "FILE:LINE: ..." in why. */
int fr_config_load_file(fr_config_t *c, const char *path, char *why, size_t why_len);
/* LMDB reader slots a configuration needs (every read transaction holds one slot for as long as
 * it exists, also while reset): fixed ones held for the server's life, a reserve no export may
 * take (so a backup and an HTTP export can always run), and the minimum max_readers (fixed +
 * reserve + one export). Exports may pin max_readers - fixed - reserve snapshots at once. */
typedef struct {
    unsigned workers, http, ingest, checkpoint; /* checkpoint: the pin and the next capture */
    unsigned fixed, reserve, min;
} fr_config_readers_t;
void fr_config_readers(const fr_config_t *c, fr_config_readers_t *out);
/* Checks what one key's bounds cannot: the form of `ingest` (nats://HOST:PORT, comma-separated),
 * `stream`, `partitions` against `partition_count`, and `max_readers` against
 * fr_config_readers' minimum. FR_OK, or FR_E_BAD_ARG with a sentence naming the key in why. */
int fr_config_check(const fr_config_t *c, char *why, size_t why_len);
/* Parses argv: --name value, --name=value, --config FILE, --help, then fr_config_check. Returns
 * FR_OK, FR_E_BAD_ARG (why set), or 1 when --help was printed. */
int fr_config_parse_args(fr_config_t *c, int argc, char **argv, char *why, size_t why_len);
void fr_config_print_help(FILE *out, const char *prog);
/* Writes "name = value" lines of the effective configuration. */
void fr_config_dump(const fr_config_t *c, FILE *out);

#endif
