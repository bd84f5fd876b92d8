/* Row ops on the CPU (ops/rows.h): gather, scatter (set and add), the CSR
 * reduce summing repeated rows in order, and their argument errors. The CUDA
 * kernels are compared with these through unit.bottleneck_cuda and
 * unit.denoiser_cuda. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ops/ctx.h"
#include "ops/rows.h"

enum { W = 3 };

static void test_gather_scatter_reduce(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    float src[4 * W], got[3 * W];
    for (int i = 0; i < 4 * W; i++) src[i] = (float)i;
    const int32_t idx[3] = {2, 0, 3};
    assert_int_equal(vt_rows_gather(ctx, got, src, idx, 3, W), VT_OK);
    const float want[3 * W] = {6, 7, 8, 0, 1, 2, 9, 10, 11};
    assert_memory_equal(got, want, sizeof want);

    float dst[4 * W];
    memset(dst, 0, sizeof dst);
    assert_int_equal(vt_rows_scatter(ctx, dst, got, idx, 3, W, false), VT_OK);
    assert_memory_equal(dst, ((const float[4 * W]){0, 1, 2, 0, 0, 0, 6, 7, 8, 9, 10, 11}), sizeof dst);
    assert_int_equal(vt_rows_scatter(ctx, dst, got, idx, 3, W, true), VT_OK); /* adds: doubles them */
    assert_memory_equal(dst, ((const float[4 * W]){0, 2, 4, 0, 0, 0, 12, 14, 16, 18, 20, 22}), sizeof dst);

    /* the broadcast backward: destination 0 sums source rows 1 and 3, destination 1 none,
     * destination 2 row 0; added to what is there */
    const int32_t off[4] = {0, 2, 2, 3}, sources[3] = {1, 3, 0};
    float acc[3 * W] = {100, 100, 100, 0, 0, 0, 0, 0, 0};
    assert_int_equal(vt_rows_reduce(ctx, acc, src, off, sources, 3, W), VT_OK);
    assert_memory_equal(acc, ((const float[3 * W]){112, 114, 116, 0, 0, 0, 0, 1, 2}), sizeof acc);

    /* bad arguments: one message naming the op; nothing asked is nothing done */
    assert_int_equal(vt_rows_gather(ctx, got, src, idx, -1, W), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "vt_rows_gather"));
    assert_int_equal(vt_rows_scatter(ctx, dst, got, NULL, 3, W, false), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "idx"));
    assert_int_equal(vt_rows_reduce(ctx, acc, src, off, NULL, 3, W), VT_ERR_ARG);
    assert_int_equal(vt_rows_gather(ctx, got, src, idx, 3, 0), VT_ERR_ARG);
    assert_int_equal(vt_rows_gather(ctx, NULL, NULL, NULL, 0, W), VT_OK);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_scatter_reduce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
