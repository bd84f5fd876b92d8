/* Exports a freshly initialised tiny vistune model (default config, seed 3)
 * as a Hugging Face LLaVA checkpoint into DIR, for the transformers check. */
#include <stdio.h>

#include "trainer/model.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: interop_export DIR\n");
        return 2;
    }
    vt_error err = {0};
    vt_ctx *ctx = NULL;
    vt_model_config c;
    vt_model_config_default(&c);
    c.init_std = 0.1f; /* logits with some spread, so a mismatch shows */
    vt_model *m = NULL;
    vt_status st = vt_ctx_create(&ctx, NULL, &err);
    if (!st) st = vt_model_create(&m, ctx, &c, 3, &err);
    if (!st) st = vt_model_export_hf(m, argv[1], NULL, &err);
    if (st) fprintf(stderr, "interop_export: %s\n", err.msg);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    return st ? 1 : 0;
}
