/* Fuzz target: freshetd's command line (fr_config_parse_args: flags, --config FILE, the checks
 * across keys). The input is the argv words, one per line, up to the first NUL; what follows the
 * NUL is written to a temporary config file that the word "@" (or a word ending in "=@") names.
 * Any words either parse into a configuration that passes fr_config_check or are refused with a
 * reason. --help prints to stdout, which is pointed at /dev/null for that call. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "fuzz_argv.h"
#include "fuzz_check.h"
#include "fuzz_file.h"
#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Words naming the config file become its path. Other absolute paths and ones with ".." are
 * defused ('/' → '_'), so --config never opens a device or FIFO that would block the run. */
static void paths(fuzz_argv_t *a, const char *file, char **owned)
{
    for (int i = 1; i < a->argc; i++) {
        char *w = a->argv[i];
        size_t n = strlen(w);
        if (n && w[n - 1] == '@' && (n == 1 || w[n - 2] == '=')) {
            size_t len = n - 1 + strlen(file) + 1;
            char *s = malloc(len);
            if (!s)
                continue;
            snprintf(s, len, "%.*s%s", (int)(n - 1), w, file);
            a->argv[i] = owned[i] = s;
        } else if (w[0] == '/' || strstr(w, "..")) {
            for (char *p = w; *p; p++)
                if (*p == '/')
                    *p = '_';
        }
    }
}

static int wants_help(const fuzz_argv_t *a)
{
    for (int i = 1; i < a->argc; i++)
        if (!strcmp(a->argv[i], "--help") || !strcmp(a->argv[i], "-h"))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    fuzz_argv_t a;
    if (fuzz_argv_split(&a, data, size, "freshetd", 0) != 0)
        return 0;
    char file[] = "/tmp/fr_fuzz_server_args_XXXXXX";
    if (fuzz_write_file(file, data + a.used, size - a.used) != 0) {
        fuzz_argv_free(&a);
        return 0;
    }
    char *owned[FUZZ_ARGV_MAX + 2] = {0};
    paths(&a, file, owned);
    int saved = -1;
    if (wants_help(&a)) {
        int null = open("/dev/null", O_WRONLY);
        fflush(stdout);
        saved = null >= 0 ? dup(1) : -1;
        if (saved >= 0)
            dup2(null, 1);
        if (null >= 0)
            close(null);
    }
    fr_config_t c;
    fr_config_defaults(&c);
    char why[512] = "";
    int rc = fr_config_parse_args(&c, a.argc, a.argv, why, sizeof why);
    if (saved >= 0) {
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
    }
    unlink(file);
    if (rc == FR_OK) {
        char why2[512];
        CHECK(fr_config_check(&c, why2, sizeof why2) == FR_OK);
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            fr_config_dump(&c, null);
            fclose(null);
        }
    } else if (rc != 1) {
        CHECK(why[0]); /* a refusal always says why */
    }
    for (int i = 0; i < a.argc; i++)
        free(owned[i]);
    fuzz_argv_free(&a);
    return 0;
}
