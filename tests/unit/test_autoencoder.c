/* The per-patch KL-autoencoder (trainer/autoencoder.h): the analytic
 * gradient of scale x (recon + beta kl) matches central finite differences
 * for every parameter (beta large so the KL terms count); the loss pieces
 * equal a direct recomputation; encode gives the posterior means of the
 * forward; the noise is a pure function of its key; config keys and bad
 * values; autoencoder.safetensors round trip, strict load, and the teacher
 * loader's errors (missing directory, no file, not an autoencoder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/rng.h"
#include "trainer/autoencoder.h"

enum { P = 2, KV = 12, H = 5, C = 3, R = 6 };

static vt_autoencoder *make(float beta) {
    vt_ae_config c;
    vt_ae_config_default(&c);
    c.patch = P;
    c.hidden = H;
    c.latent_dim = C;
    c.beta = beta;
    vt_autoencoder *ae = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ae_create(&ae, &c, 11, &err), VT_OK);
    assert_int_equal(ae->K, KV);
    /* nonzero biases so every path is exercised */
    vt_rng r;
    vt_rng_init(&r, 99);
    for (int i = 0; i < VT_AE_TENSORS; i++)
        if (ae->tensors[i].ndim == 1)
            for (size_t k = 0; k < ae->tensors[i].numel; k++)
                ae->params[ae->tensors[i].offset + k] = 0.3f * (float)vt_rng_normal(&r);
    return ae;
}

static void inputs(float *x, float *eps) {
    for (int i = 0; i < R * KV; i++) x[i] = 0.9f * sinf(0.71f * (float)i + 0.2f);
    for (int i = 0; i < R * C; i++) eps[i] = 1.1f * cosf(1.3f * (float)i);
}

static void test_gradcheck(void **state) {
    (void)state;
    vt_autoencoder *ae = make(0.7f);
    float x[R * KV], eps[R * C];
    inputs(x, eps);
    vt_error err = {0};
    const float scale = 1.7f;
    memset(ae->grads, 0, ae->num_params * sizeof(float));
    assert_int_equal(vt_ae_forward(ae, x, R, eps, &err), VT_OK);
    assert_true(ae->recon > 0 && ae->kl > 0);
    assert_true(fabs(ae->loss - (ae->recon + (double)0.7f * ae->kl)) < 1e-12);
    assert_int_equal(vt_ae_backward(ae, scale, &err), VT_OK);
    int bad = 0, checked = 0;
    for (size_t k = 0; k < ae->num_params; k++) {
        float keep = ae->params[k], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
        ae->params[k] = keep + h;
        assert_int_equal(vt_ae_forward(ae, x, R, eps, &err), VT_OK);
        double up = ae->loss;
        ae->params[k] = keep - h;
        assert_int_equal(vt_ae_forward(ae, x, R, eps, &err), VT_OK);
        double down = ae->loss;
        ae->params[k] = keep;
        double fd = scale * (up - down) / (2.0 * h), an = ae->grads[k];
        checked++;
        if (fabs(fd - an) > 2e-3 + 2e-2 * fabs(fd)) {
            if (bad++ < 5) print_message("param %zu: analytic %g, finite differences %g\n", k, an, fd);
        }
    }
    assert_int_equal(checked, (int)ae->num_params);
    assert_int_equal(bad, 0);
    /* a second backward without a forward adds nothing */
    assert_int_equal(vt_ae_backward(ae, 1.0f, &err), VT_OK); /* consumes the last finite-difference forward */
    float g0 = ae->grads[0];
    assert_int_equal(vt_ae_backward(ae, 1.0f, &err), VT_OK);
    assert_true(ae->grads[0] == g0);
    vt_ae_free(ae);
}

/* recon / kl recomputed directly in double from the parameters */
static void test_loss_and_encode(void **state) {
    (void)state;
    vt_autoencoder *ae = make(0.25f);
    float x[R * KV], eps[R * C], mean[R * C];
    inputs(x, eps);
    vt_error err = {0};
    assert_int_equal(vt_ae_forward(ae, x, R, eps, &err), VT_OK);
    double recon = 0, kl = 0;
    for (int r = 0; r < R; r++) {
        double h1[H], ml[2 * C], z[C], h2[H];
        for (int j = 0; j < H; j++) {
            double a = ae->e1_b[j];
            for (int k = 0; k < KV; k++) a += (double)ae->e1_w[j * KV + k] * x[r * KV + k];
            h1[j] = a / (1 + exp(-a));
        }
        for (int j = 0; j < 2 * C; j++) {
            double a = ae->e2_b[j];
            for (int k = 0; k < H; k++) a += (double)ae->e2_w[j * H + k] * h1[k];
            ml[j] = a;
        }
        for (int c = 0; c < C; c++) {
            z[c] = ml[c] + exp(0.5 * ml[C + c]) * eps[r * C + c];
            kl += 0.5 * (ml[c] * ml[c] + exp(ml[C + c]) - 1 - ml[C + c]);
        }
        for (int j = 0; j < H; j++) {
            double a = ae->d1_b[j];
            for (int k = 0; k < C; k++) a += (double)ae->d1_w[j * C + k] * z[k];
            h2[j] = a / (1 + exp(-a));
        }
        for (int j = 0; j < KV; j++) {
            double a = ae->d2_b[j];
            for (int k = 0; k < H; k++) a += (double)ae->d2_w[j * H + k] * h2[k];
            recon += (a - x[r * KV + j]) * (a - x[r * KV + j]);
        }
        if (r == 2) { /* encode gives the means */
            assert_int_equal(vt_ae_encode(ae, x, R, mean, &err), VT_OK);
            for (int c = 0; c < C; c++) assert_true(fabs(mean[2 * C + c] - ml[c]) < 1e-5);
        }
    }
    recon /= (double)R * KV;
    kl /= R;
    assert_true(fabs(ae->recon - recon) < 1e-5 * recon);
    assert_true(fabs(ae->kl - kl) < 1e-5 * kl);
    assert_true(fabs(ae->loss - (recon + 0.25 * kl)) < 1e-5 * ae->loss);
    assert_int_equal(vt_ae_forward(ae, x, 0, eps, &err), VT_OK);
    assert_true(ae->loss == 0.0);
    vt_ae_free(ae);
}

static void test_noise(void **state) {
    (void)state;
    vt_autoencoder *ae = make(0.1f);
    float a[8 * C], b[8 * C], c[8 * C];
    vt_ae_noise(ae, 8, 42, a);
    vt_ae_noise(ae, 8, 42, b);
    vt_ae_noise(ae, 8, 43, c);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    double s2 = 0;
    for (int i = 0; i < 8 * C; i++) s2 += a[i] * a[i];
    assert_true(s2 > 0.2 * 8 * C && s2 < 3.0 * 8 * C);
    vt_ae_free(ae);
}

static void test_config(void **state) {
    (void)state;
    vt_config *cfg = NULL;
    vt_error err = {0};
    const char *y = "autoencoder:\n  latent_dim: 8\n  hidden: 32\n  beta: 0.01\n  pixel_norm: none\n";
    assert_int_equal(vt_config_parse(y, strlen(y), "t.yaml", &cfg, &err), VT_OK);
    vt_ae_config c;
    vt_ae_config_default(&c);
    assert_int_equal(c.latent_dim, 16);
    assert_int_equal(vt_ae_config_read(cfg, "autoencoder", &c, &err), VT_OK);
    assert_int_equal(c.latent_dim, 8);
    assert_int_equal(c.hidden, 32);
    assert_true(fabsf(c.beta - 0.01f) < 1e-9f);
    assert_int_equal(c.pixel_norm, 1);
    vt_config_free(cfg);
    const char *bad[] = {"autoencoder:\n  latent_dim: 0\n", "autoencoder:\n  beta: -1\n",
                         "autoencoder:\n  pixel_norm: zscore\n", "autoencoder:\n  hidden: x\n"};
    const char *key[] = {"autoencoder.latent_dim", "autoencoder.beta", "autoencoder.pixel_norm", "autoencoder.hidden"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vt_config_parse(bad[i], strlen(bad[i]), "t.yaml", &cfg, &err), VT_OK);
        vt_ae_config_default(&c);
        assert_int_not_equal(vt_ae_config_read(cfg, "autoencoder", &c, &err), VT_OK);
        if (!strstr(err.msg, key[i])) print_message("'%s' lacks %s\n", err.msg, key[i]);
        assert_non_null(strstr(err.msg, key[i]));
        vt_config_free(cfg);
    }
}

static void test_save_load_teacher(void **state) {
    (void)state;
    char dir[] = "/tmp/vt_ae_testXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512], sub[512];
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", dir);
    vt_autoencoder *a = make(0.5f), *b = make(0.5f), *t = NULL;
    a->cfg.pixel_norm = 1;
    for (size_t k = 0; k < a->num_params; k++) a->params[k] = (float)k * 0.001f - 0.2f;
    vt_error err = {0};
    assert_int_equal(vt_ae_save(a, path, &err), VT_OK);
    assert_int_equal(vt_ae_load(b, path, &err), VT_OK);
    assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
    assert_int_equal(vt_ae_load_teacher(&t, "ross.teacher", dir, &err), VT_OK);
    assert_int_equal(t->cfg.patch, P);
    assert_int_equal(t->H, H);
    assert_int_equal(t->C, C);
    assert_int_equal(t->cfg.pixel_norm, 1);
    assert_memory_equal(a->params, t->params, a->num_params * sizeof(float));
    vt_ae_free(t);
    /* a different latent size is refused by the strict load */
    vt_ae_config c = a->cfg;
    c.latent_dim = C + 1;
    vt_autoencoder *d = NULL;
    assert_int_equal(vt_ae_create(&d, &c, 1, &err), VT_OK);
    assert_int_equal(vt_ae_load(d, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "latent_dim"));
    vt_ae_free(d);
    /* teacher errors: no directory, no file, a file that is not an autoencoder */
    snprintf(sub, sizeof sub, "%s/nope", dir);
    assert_int_equal(vt_ae_load_teacher(&t, "ross.teacher", sub, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "ross.teacher"));
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(vt_ae_load_teacher(&t, "ross.teacher", sub, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "no autoencoder.safetensors"));
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", sub);
    FILE *f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(vt_ae_load_teacher(&t, "ross.teacher", sub, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "ross.teacher"));
    assert_null(t);
    vt_ae_free(a);
    vt_ae_free(b);
    assert_int_equal(vt_remove_tree(dir, &err), VT_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_loss_and_encode),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_save_load_teacher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
