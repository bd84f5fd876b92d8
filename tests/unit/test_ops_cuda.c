/* CUDA backend against the CPU backend: runs the per-op suite
 * (tests/parity/ops_suite.h: every op forward and backward, AdamW, clipping)
 * on both with identical inputs and compares every tensor, plus the CUDA
 * error paths (bad ids, bad targets, bad key lengths). Exits 77 (skip) when
 * no CUDA device is present or the build has no CUDA backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "parity/ops_suite.h"

/* Relative L2 error allowed between the backends (both float32; the CPU side
 * is within 2e-7 of float64, so this bounds the CUDA error at about 1e-5). */
#define CUDA_REL_TOL 1e-5

typedef struct {
    char name[96];
    uint32_t dtype;
    size_t bytes, n;
    void *data;
} mem_tensor;

typedef struct {
    mem_tensor t[512];
    int n;
    char record[64];
} mem_sink;

static void m_record(void *u, const char *name) {
    mem_sink *m = u;
    snprintf(m->record, sizeof m->record, "%s", name);
}
static void m_record_end(void *u) { (void)u; }
static void m_tensor(void *u, const char *name, uint32_t dtype, const void *data, size_t esize,
                     const int64_t *dims, int ndim) {
    mem_sink *m = u;
    if (m->n >= (int)(sizeof m->t / sizeof m->t[0])) abort();
    mem_tensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s.%s", m->record, name);
    t->dtype = dtype;
    t->n = 1;
    for (int i = 0; i < ndim; i++) t->n *= (size_t)dims[i];
    t->bytes = t->n * esize;
    t->data = malloc(t->bytes ? t->bytes : 1);
    if (!t->data) abort();
    memcpy(t->data, data, t->bytes);
}

static void free_sink(mem_sink *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].data);
}

static void test_cuda_matches_cpu(void **state) {
    (void)state;
    static mem_sink cpu, gpu;
    vt_error err = {0};
    vt_ctx *c = NULL, *g = NULL;
    vt_ctx_options oc = {VT_BACKEND_CPU, 0, 0}, og = {VT_BACKEND_CUDA, 0, 0};
    assert_int_equal(vt_ctx_create(&c, &oc, &err), VT_OK);
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_OK);
    ops_sink sc = {m_record, m_tensor, m_record_end, &cpu};
    ops_sink sg = {m_record, m_tensor, m_record_end, &gpu};
    ops_suite_run(c, &sc);
    ops_suite_run(g, &sg);
    assert_int_equal(cpu.n, gpu.n);
    int bad = 0;
    for (int i = 0; i < cpu.n; i++) {
        mem_tensor *a = &cpu.t[i], *b = &gpu.t[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->bytes, b->bytes);
        if (a->dtype != 0) { /* ints and masks: exact */
            if (memcmp(a->data, b->data, a->bytes) != 0) {
                fprintf(stderr, "%s: integer tensors differ\n", a->name);
                bad++;
            }
            continue;
        }
        const float *x = a->data, *y = b->data;
        double num = 0.0, den = 0.0, mx = 0.0;
        for (size_t k = 0; k < a->n; k++) {
            double d = (double)y[k] - x[k];
            num += d * d;
            den += (double)x[k] * x[k];
            mx = fmax(mx, fabs(d));
        }
        double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        int fail = !(rel <= CUDA_REL_TOL);
        fprintf(stderr, "%-44s max abs %.3e rel L2 %.3e%s\n", a->name, mx, rel,
                fail ? "  FAIL" : "");
        bad += fail;
    }
    free_sink(&cpu);
    free_sink(&gpu);
    vt_ctx_destroy(c);
    vt_ctx_destroy(g);
    assert_int_equal(bad, 0);
}

static void test_cuda_bad_input(void **state) {
    (void)state;
    vt_error err = {0};
    vt_ctx *g = NULL;
    vt_ctx_options og = {VT_BACKEND_CUDA, 0, 0};
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_OK);
    int32_t ids_h[3] = {0, 9, 1};
    int32_t *ids = NULL;
    float *buf = NULL;
    uint8_t *mask = NULL;
    assert_int_equal(vt_ctx_alloc(g, (void **)&ids, sizeof ids_h), VT_OK);
    assert_int_equal(vt_ctx_alloc(g, (void **)&buf, 64 * sizeof(float)), VT_OK);
    assert_int_equal(vt_ctx_alloc(g, (void **)&mask, 3), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(g, ids, ids_h, sizeof ids_h), VT_OK);
    assert_int_equal(vt_embedding_forward(g, buf, ids, buf, 3, 8, 2), VT_ERR_RANGE);
    assert_non_null(strstr(vt_ctx_error(g)->msg, "id 9 at position 1"));
    assert_int_equal(vt_embedding_backward(g, buf, buf, ids, 3, 8, 2), VT_ERR_RANGE);
    /* Cross-entropy: target 9 with V = 5 at a counted row; uncounted is fine. */
    uint8_t mask_h[3] = {1, 1, 1};
    assert_int_equal(vt_ctx_memcpy_h2d(g, mask, mask_h, 3), VT_OK);
    float loss = 0;
    int cnt = 0;
    assert_int_equal(vt_crossentropy_forward(g, buf, NULL, buf + 32, ids, mask, 3, 5, &loss, &cnt),
                     VT_ERR_RANGE);
    assert_non_null(strstr(vt_ctx_error(g)->msg, "target 9 at counted position 1"));
    mask_h[1] = 0;
    assert_int_equal(vt_ctx_memcpy_h2d(g, mask, mask_h, 3), VT_OK);
    assert_int_equal(vt_crossentropy_forward(g, buf, NULL, buf + 32, ids, mask, 3, 5, &loss, &cnt),
                     VT_OK);
    assert_int_equal(cnt, 2);
    mask_h[1] = 1;
    assert_int_equal(vt_ctx_memcpy_h2d(g, mask, mask_h, 3), VT_OK);
    assert_int_equal(vt_crossentropy_backward(g, buf + 16, buf, ids, mask, 3, 5, 1.0f),
                     VT_ERR_RANGE);
    /* Attention key lengths beyond T. */
    assert_int_equal(vt_attention_forward(g, buf, buf, buf, buf, buf, ids, 2, 4, 1, 1, 2, 1),
                     VT_ERR_RANGE);
    assert_non_null(strstr(vt_ctx_error(g)->msg, "kv_len[1]=9"));
    vt_ctx_free(g, ids);
    vt_ctx_free(g, buf);
    vt_ctx_free(g, mask);
    vt_ctx_destroy(g);
}

static void test_cuda_bad_device(void **state) {
    (void)state;
    vt_error err = {0};
    vt_ctx *g = NULL;
    vt_ctx_options og = {VT_BACKEND_CUDA, 0, vt_cuda_device_count()};
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_ERR_DEVICE);
    assert_null(g);
    assert_non_null(strstr(err.msg, "does not exist"));
}

int main(void) {
    if (vt_cuda_device_count() == 0) {
        fprintf(stderr, "test_ops_cuda: no CUDA device (or no CUDA backend): skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_matches_cpu),
        cmocka_unit_test(test_cuda_bad_input),
        cmocka_unit_test(test_cuda_bad_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
