// vt-test: np=3
/* Bucketed in-place gradient averaging across 3 ranks: every element equals
 * the mean of the ranks' values (each rank regenerates the others' data from
 * the shared seed), buckets launched early while "backward" reports progress,
 * odd sizes (n not a multiple of the bucket, bucket > n), scale = 1 (sum),
 * bad bucket size; on the CPU backend and, where a GPU is present, on CUDA
 * device buffers (staged through the host); plus node-local rank and device
 * choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>
#include <mpi.h>

#include "common/leak_check.h"
#include "common/rng.h"
#include "trainer/dist.h"

static int rank, size;

static float value(int r, size_t i) {
    vt_rng g;
    vt_rng_init(&g, vt_hash4(42, (uint64_t)r, i, 0));
    return vt_rng_uniform(&g) * 2 - 1;
}

/* Runs on ctx: host memory on CPU, device memory (staged through the host)
 * on CUDA. */
static void check_on(vt_ctx *ctx, size_t n, size_t bucket, int report_progress, float scale) {
    float *h = malloc(n * sizeof *h), *g = NULL;
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&g, n * sizeof *g), VT_OK);
    vt_grad_sync *s;
    vt_error err = {0};
    assert_int_equal(vt_grad_sync_new(MPI_COMM_WORLD, ctx, g, n, bucket, &s, &err), VT_OK);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) h[i] = value(rank, i);
        assert_int_equal(vt_ctx_memcpy_h2d(ctx, g, h, n * sizeof *h), VT_OK);
        vt_grad_sync_begin(s);
        if (report_progress)
            for (size_t from = n; from-- > 0;)
                if (from % 5 == 0) assert_int_equal(vt_grad_sync_ready(s, from, &err), VT_OK);
        assert_int_equal(vt_grad_sync_finish(s, scale, &err), VT_OK);
        if (report_progress) assert_int_equal(vt_grad_sync_early_buckets(s), (int)((n + bucket - 1) / bucket));
        else assert_int_equal(vt_grad_sync_early_buckets(s), 0);
        assert_int_equal(vt_ctx_memcpy_d2h(ctx, h, g, n * sizeof *h), VT_OK);
        for (size_t i = 0; i < n; i++) {
            /* Sum in rank order, as a deterministic reduction would. */
            float want = 0;
            for (int r = 0; r < size; r++) want += value(r, i);
            want *= scale;
            assert_true(fabsf(h[i] - want) <= 1e-6f);
        }
    }
    vt_grad_sync_free(s);
    vt_ctx_free(ctx, g);
    free(h);
}

static void check(size_t n, size_t bucket, int report_progress, float scale) {
    vt_ctx *ctx = NULL;
    vt_ctx_options cpu = {.backend = VT_BACKEND_CPU, .threads = 1};
    assert_int_equal(vt_ctx_create(&ctx, &cpu, NULL), VT_OK);
    check_on(ctx, n, bucket, report_progress, scale);
    vt_ctx_destroy(ctx);
    if (vt_cuda_device_count() > 0) { /* every rank sees the same devices on one host */
        vt_ctx_options gpu = {.backend = VT_BACKEND_CUDA, .device = 0};
        assert_int_equal(vt_ctx_create(&ctx, &gpu, NULL), VT_OK);
        check_on(ctx, n, bucket, report_progress, scale);
        vt_ctx_destroy(ctx);
    }
}

static void test_average(void **state) {
    (void)state;
    check(1000, 64, 1, 1.0f / (float)size);
    check(1000, 64, 0, 1.0f / (float)size);
    check(37, 100, 1, 1.0f / (float)size);
    check(37, 1, 1, 1.0f);
}

static void test_bad_bucket(void **state) {
    (void)state;
    float g[4];
    vt_grad_sync *s;
    vt_error err = {0};
    vt_ctx *ctx = NULL;
    assert_int_equal(vt_ctx_create(&ctx, NULL, NULL), VT_OK);
    assert_int_equal(vt_grad_sync_new(MPI_COMM_WORLD, ctx, g, 4, 0, &s, &err), VT_ERR_ARG);
    vt_ctx_destroy(ctx);
}

static void test_node_and_device(void **state) {
    (void)state;
    vt_dist_node node;
    assert_int_equal(vt_dist_node_info(MPI_COMM_WORLD, &node, NULL), VT_OK);
    assert_int_equal(node.local_size, size); /* one host */
    assert_int_equal(node.local_rank, rank);
    unsetenv("CUDA_VISIBLE_DEVICES");
    assert_int_equal(vt_dist_visible_devices(), -1);
    assert_int_equal(vt_dist_pick_device(2, 0), -1);
    assert_int_equal(vt_dist_pick_device(3, 2), 1);
    setenv("CUDA_VISIBLE_DEVICES", "4,5", 1);
    assert_int_equal(vt_dist_visible_devices(), 2);
    assert_int_equal(vt_dist_pick_device(2, 8), 0);
    assert_int_equal(vt_dist_pick_device(3, 8), 1);
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
    assert_int_equal(vt_dist_pick_device(0, 8), -1);
    setenv("CUDA_VISIBLE_DEVICES", "-1", 1);
    assert_int_equal(vt_dist_pick_device(0, 8), -1);
    setenv("CUDA_VISIBLE_DEVICES", "0,1,2", 1);
    assert_int_equal(vt_dist_pick_device(4, 1), 0); /* fewer real than listed */
    unsetenv("CUDA_VISIBLE_DEVICES");
}

int main(int argc, char **argv) {
    vt_leak_check_pause();
    MPI_Init(&argc, &argv);
    vt_leak_check_resume();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_average),
        cmocka_unit_test(test_bad_bucket),
        cmocka_unit_test(test_node_and_device),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return rc;
}
