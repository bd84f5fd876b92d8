/* vt_image_resize against PyTorch's interpolate(mode="bilinear",
 * antialias=True, align_corners=False) in float64, on random images for
 * downscales (several factors, odd sizes), upscales and mixed aspect
 * changes. Our result is uint8 rounded to nearest, so every pixel must be
 * within 0.5 (+ float32 slack) of the reference. Skips when no torch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "pipeline/image.h"

static const char *SCRIPT =
    "import sys, numpy as np, torch, torch.nn.functional as F\n"
    "d = sys.argv[1]\n"
    "for line in open(d + '/cases.txt'):\n"
    "    k, w, h, ow, oh = map(int, line.split())\n"
    "    a = np.fromfile('%s/in%d.bin' % (d, k), dtype=np.uint8).reshape(h, w, 3)\n"
    "    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]\n"
    "    y = F.interpolate(x, size=(oh, ow), mode='bilinear', antialias=True, align_corners=False)\n"
    "    y[0].permute(1, 2, 0).contiguous().numpy().tofile('%s/ref%d.bin' % (d, k))\n";

static void test_resize_matches_torch(void **state) {
    (void)state;
    const char *py = getenv("VT_TORCH_PYTHON");
    const char *tmp = getenv("VT_TEST_TMP");
    if (!py || !*py || !tmp) skip();
    static const int cases[][4] = {
        {64, 48, 32, 24},   {100, 100, 33, 33}, {1000, 37, 224, 20}, {57, 91, 13, 7},
        {16, 12, 40, 30},   {7, 5, 336, 336},   {300, 200, 299, 201}, {336, 100, 336, 336},
        {1, 1, 3, 2},       {99, 1, 10, 1},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", tmp);
    FILE *list = fopen(path, "w");
    assert_non_null(list);
    vt_image src[N], out[N];
    for (int k = 0; k < N; k++) {
        int w = cases[k][0], h = cases[k][1];
        assert_int_equal(vt_image_alloc(&src[k], w, h, NULL), VT_OK);
        vt_rng r;
        vt_rng_init(&r, 100 + (uint64_t)k);
        for (size_t i = 0; i < (size_t)w * h * 3; i++) src[k].rgb[i] = (uint8_t)vt_rng_u32(&r);
        snprintf(path, sizeof path, "%s/in%d.bin", tmp, k);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(src[k].rgb, 1, (size_t)w * h * 3, f), (size_t)w * h * 3);
        fclose(f);
        fprintf(list, "%d %d %d %d %d\n", k, w, h, cases[k][2], cases[k][3]);
        assert_int_equal(vt_image_resize(&src[k], cases[k][2], cases[k][3], &out[k], NULL), VT_OK);
    }
    fclose(list);
    snprintf(path, sizeof path, "%s/resize_ref.py", tmp);
    FILE *f = fopen(path, "w");
    fputs(SCRIPT, f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/resize_ref.py' '%s'", py, tmp, tmp);
    int rc = system(cmd);
    if (rc != 0) fail_msg("reference script failed (%d): %s", rc, cmd);
    for (int k = 0; k < N; k++) {
        size_t n = (size_t)out[k].width * out[k].height * 3;
        double *ref = malloc(n * sizeof *ref);
        snprintf(path, sizeof path, "%s/ref%d.bin", tmp, k);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(ref, sizeof *ref, n, f), n);
        fclose(f);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = out[k].rgb[i] - ref[i];
            if (d < 0) d = -d;
            if (d > worst) worst = d;
        }
        print_message("case %d: %dx%d -> %dx%d max |ours - torch| = %.4f\n", k, cases[k][0],
                      cases[k][1], cases[k][2], cases[k][3], worst);
        assert_true(worst <= 0.5 + 2e-3);
        free(ref);
        vt_image_free(&src[k]);
        vt_image_free(&out[k]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_matches_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
