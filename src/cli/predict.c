/* `freshet predict`: offline evaluation of a compiled model over a CSV (fr_model_predict_csv), with
 * no server involved. The CSV of scores goes to stdout; errors go to stderr with a non-zero exit.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "freshet/model.h"

int fr_cli_predict(fr_cli_ctx_t *ctx)
{
    const char *model = NULL, *csv = NULL;
    for (int i = 0; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (!(v = fr_cli_flag_value(ctx, &i)))
            return 2;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--csv"))
            csv = v;
        else
            return fr_cli_fail(2, "predict: unknown flag %s", a);
    }
    if (!model || !csv)
        return fr_cli_fail(2, "usage: freshet predict --model MODEL.frm --csv FILE|-");
    fr_model_t *m = NULL;
    const char *why = NULL;
    int rc = fr_model_load_file(model, &m, &why);
    if (rc != FR_OK)
        return fr_cli_fail(rc, "%s: %s", model, why ? why : fr_err_str(rc));
    FILE *in = strcmp(csv, "-") == 0 ? stdin : fopen(csv, "r");
    if (!in) {
        fr_model_free(m);
        return fr_cli_fail(FR_E_IO, "%s: cannot open", csv);
    }
    rc = fr_model_predict_csv(m, in, stdout, &why);
    if (in != stdin)
        fclose(in);
    fr_model_free(m);
    if (fflush(stdout) != 0 && rc == FR_OK)
        rc = FR_E_IO;
    if (rc != FR_OK)
        return fr_cli_fail(rc, "%s: %s", csv, why ? why : fr_err_str(rc));
    return 0;
}
