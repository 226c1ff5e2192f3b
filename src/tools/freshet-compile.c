/* freshet-compile: compiles an XGBoost JSON or Freshet linear JSON model (plus an optional feature
 * map) into a Freshet model artifact. main() only parses arguments; the work is in src/model. */
#include <stdio.h>
#include <string.h>

#include "freshet/model.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: freshet-compile MODEL.json -o MODEL.frm [--features MAP.json]\n"
               "  MODEL.json  XGBoost Booster.save_model() JSON (gbtree) or a linear/logistic JSON\n"
               "  MAP.json    {\"model_feature\": \"view:feature\", ...}\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *map = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return usage(stdout);
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--features") == 0 && i + 1 < argc)
            map = argv[++i];
        else if (argv[i][0] != '-' && !in)
            in = argv[i];
        else {
            fprintf(stderr, "freshet-compile: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!in || !out)
        return usage(stderr);
    char why[512] = "";
    fr_err_t rc = fr_model_compile_file(in, map, out, why, sizeof why);
    if (rc != FR_OK) {
        fprintf(stderr, "freshet-compile: %s: %s: %s\n", in, fr_err_name(rc), why[0] ? why : fr_err_str(rc));
        return 1;
    }
    fr_model_t *m = NULL;
    const char *lwhy = NULL;
    rc = fr_model_load_file(out, &m, &lwhy);
    if (rc != FR_OK) {
        fprintf(stderr, "freshet-compile: %s: reload failed: %s: %s\n", out, fr_err_name(rc), lwhy);
        return 1;
    }
    uint32_t bound = 0;
    for (uint32_t i = 0; i < fr_model_n_features(m); i++)
        bound += fr_model_feature_binding(m, i) != NULL;
    fprintf(stderr, "freshet-compile: wrote %s (%s, %u inputs, %u bound, %u outputs, %u trees)\n", out,
            fr_model_objective_name(m), fr_model_n_features(m), bound, fr_model_n_outputs(m),
            fr_model_n_trees(m));
    fr_model_free(m);
    return 0;
}
