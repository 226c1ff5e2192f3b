/* freshet: the command-line tool. Picks the server (--server or FRESHET_SERVER) and dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(fr_cli_ctx_t *ctx);
    const char *usage;
} commands[] = {
    {"apply", fr_cli_apply, "apply FILE [--dry-run]            create/extend views from a registry JSON"},
    {"put", fr_cli_put, "put --view V [--source S --partition P] [--format json|csv] [--file F] [--skip-invalid]"},
    {"get", fr_cli_get, "get --entities a,b (--view V | --features v:f,...) [--as-of T] [--include-expired] [--format table|json]"},
    {"export", fr_cli_export, "export pit --labels FILE --features v:f,... [--mode event|served] [--format csv|jsonl|msgpack] [--with-status] [-o OUT]\n"
                              "  freshet export snapshot (--view V | --features v:f,...) [--as-of T] [--format ...] [-o OUT]"},
    {"status", fr_cli_status, "status [--config]                 server, storage and per-view state (or its configuration)"},
    {"backup", fr_cli_backup, "backup DEST [--no-compact]         hot, consistent copy of the store (on the server's disk)"},
    {"sources", fr_cli_sources, "sources                           stored stream positions (exactly-once)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freshet [--server HOST:PORT] COMMAND ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  freshet %s\n", commands[i].usage);
    fprintf(out, "\nThe server defaults to $FRESHET_SERVER, then 127.0.0.1:7070.\n");
}

int main(int argc, char **argv)
{
    const char *server = getenv("FRESHET_SERVER");
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--server") && i + 1 < argc) {
            server = argv[i + 1];
            i += 2;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "freshet: USAGE: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    fr_cli_ctx_t ctx = {server && *server ? server : "127.0.0.1:7070", argc - i - 1, argv + i + 1};
    /* also accept --server after the command */
    for (int k = 0; k + 1 < ctx.argc; k++)
        if (!strcmp(ctx.argv[k], "--server")) {
            ctx.server = ctx.argv[k + 1];
            memmove(ctx.argv + k, ctx.argv + k + 2, (size_t)(ctx.argc - k - 2) * sizeof *ctx.argv);
            ctx.argc -= 2;
            break;
        }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(argv[i], commands[k].name))
            return commands[k].run(&ctx);
    fprintf(stderr, "freshet: USAGE: unknown command \"%s\"\n", argv[i]);
    usage(stderr);
    return 2;
}
