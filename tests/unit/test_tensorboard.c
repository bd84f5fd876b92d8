/* TensorBoard event files written by trainer/tensorboard.c, read back by an
 * independent Python reader (tests/tools/read_tfevents.py: its own CRC32C and
 * hand-decoded protobuf), plus the CRC32C known-answer value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/fs.h"
#include "trainer/metrics.h"
#include "trainer/tensorboard.h"

static const char *tmpdir(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

/* Runs the Python reader on path; returns its stdout (malloc'd) or NULL. */
static char *read_back(const char *path) {
    char cmd[8192];
    const char *src = getenv("VT_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tools/read_tfevents.py '%s'", src ? src : ".", path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + n, 1, cap - n - 1, p)) > 0) n += r;
    out[n] = 0;
    int rc = pclose(p);
    if (rc != 0) {
        fprintf(stderr, "reader failed (%d): %s\n", rc, out);
        free(out);
        return NULL;
    }
    return out;
}

static void test_crc32c_known_answer(void **state) {
    (void)state;
    /* RFC 3720 B.4 / the usual check value of CRC-32C. */
    assert_int_equal(vt_crc32c("123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(vt_crc32c(zeros, 32), 0x8A9136AAu);
}

static void test_scalars_read_back(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tb-scalars", tmpdir());
    vt_remove_tree(dir, NULL);
    vt_tb_writer *w;
    vt_error err = {0};
    assert_int_equal(vt_tb_open(dir, &w, &err), VT_OK);
    assert_int_equal(vt_tb_scalar(w, 1, "train/loss", 2.5f, &err), VT_OK);
    const char *tags[] = {"train/loss", "train/lr"};
    float vals[] = {1.25f, 3e-4f};
    assert_int_equal(vt_tb_scalars(w, 300000000000LL, 2, tags, vals, &err), VT_OK);
    assert_int_equal(vt_tb_scalars(w, 5, 0, tags, vals, &err), VT_ERR_ARG);
    assert_int_equal(vt_tb_flush(w, &err), VT_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s", vt_tb_path(w));
    vt_tb_close(w);
    assert_non_null(strstr(path, "events.out.tfevents."));
    char *out = read_back(path);
    assert_non_null(out);
    assert_string_equal(out,
                        "version\tbrain.Event:2\n"
                        "1\ttrain/loss\t2.5\n"
                        "300000000000\ttrain/loss\t1.25\n"
                        "300000000000\ttrain/lr\t0.0003\n");
    free(out);
}

static void test_reader_rejects_corruption(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tb-corrupt", tmpdir());
    vt_remove_tree(dir, NULL);
    vt_tb_writer *w;
    assert_int_equal(vt_tb_open(dir, &w, NULL), VT_OK);
    assert_int_equal(vt_tb_scalar(w, 7, "x", 1.0f, NULL), VT_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s", vt_tb_path(w));
    vt_tb_close(w);
    /* Flip one byte of the last record's payload: the data CRC must catch it,
     * which shows the reader really checks (so the test above can fail). */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -6, SEEK_END);
    int c = fgetc(f);
    fseek(f, -6, SEEK_END);
    fputc(c ^ 0x40, f);
    fclose(f);
    char *out = read_back(path);
    assert_null(out);
}

static void test_metrics_files(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/metrics", tmpdir());
    vt_remove_tree(dir, NULL);
    vt_metrics_config cfg = {.dir = dir, .tensorboard = true, .log_every = 1, .total_steps = 2, .progress = 0};
    vt_metrics *m;
    vt_error err = {0};
    assert_int_equal(vt_metrics_open(&cfg, &m, &err), VT_OK);
    vt_step_metrics s = {.step = 1, .loss = 4.0, .lr = 1e-3, .grad_norm = 0.5, .tokens = 1000,
                         .images = 10, .step_seconds = 2.0, .stall_seconds = 0.5};
    assert_int_equal(vt_metrics_step(m, &s, &err), VT_OK);
    s.step = 2;
    s.loss = NAN;
    assert_int_equal(vt_metrics_step(m, &s, &err), VT_OK);
    const char *names[] = {"eval/loss", "eval/acc/color"};
    double vals[] = {3.5, 0.75};
    assert_int_equal(vt_metrics_eval(m, 2, 2, names, vals, &err), VT_OK);
    char jsonl[4096], tb[4096];
    snprintf(jsonl, sizeof jsonl, "%s", vt_metrics_jsonl_path(m));
    snprintf(tb, sizeof tb, "%s", vt_metrics_tb_path(m));
    vt_metrics_close(m);

    char *text;
    size_t len;
    assert_int_equal(vt_read_file(jsonl, 1 << 20, &text, &len, &err), VT_OK);
    const char *l1 = text, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    assert_true(!strncmp(l1, "{\"step\":1,\"loss\":4,\"lr\":0.001,\"grad_norm\":0.5,\"tokens_per_s\":500,"
                             "\"images_per_s\":5,\"data_stall\":0.25,\"step_s\":2,\"peak_rss_mb\":",
                         strlen("{\"step\":1,\"loss\":4,\"lr\":0.001,\"grad_norm\":0.5,\"tokens_per_s\":500,"
                                "\"images_per_s\":5,\"data_stall\":0.25,\"step_s\":2,\"peak_rss_mb\":")));
    assert_true(!strncmp(l2, "{\"step\":2,\"loss\":null,", 22));
    assert_true(!strncmp(l3, "{\"step\":2,\"eval\":true,\"eval/loss\":3.5,\"eval/acc/color\":0.75}\n", 62));
    free(text);

    char *out = read_back(tb);
    assert_non_null(out);
    assert_non_null(strstr(out, "1\ttrain/loss\t4\n"));
    assert_non_null(strstr(out, "1\tperf/data_stall\t0.25\n"));
    assert_non_null(strstr(out, "2\ttrain/loss\tnan\n"));
    assert_non_null(strstr(out, "2\teval/acc/color\t0.75\n"));
    free(out);

    cfg.log_every = 0;
    assert_int_equal(vt_metrics_open(&cfg, &m, &err), VT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answer),
        cmocka_unit_test(test_scalars_read_back),
        cmocka_unit_test(test_reader_rejects_corruption),
        cmocka_unit_test(test_metrics_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
