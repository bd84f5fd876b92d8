// vt-test: np=2
/* Checkpoints across 2 ranks: commit (rank 1 adds its own file before the
 * barrier), info and RNG round trip, resume-side scan that skips a .tmp
 * directory, a directory without COMPLETE, a truncated file and a tampered
 * meta.pb (each with a warning), exact-path open errors, retention with
 * keep-last and pins, and a signal agreement across ranks. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include <cmocka.h>
#include <mpi.h>

#include "common/leak_check.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "trainer/checkpoint.h"
#include "trainer/signals.h"

static int rank;
static char root[PATH_MAX];

static const char CONFIG[] = "train:\n  steps: 10\n";

static void write_ckpt(uint64_t step) {
    vt_ckpt_writer *w;
    vt_error err = {0};
    assert_int_equal(vt_ckpt_begin(root, step, MPI_COMM_WORLD, &w, &err), VT_OK);
    char payload[64];
    snprintf(payload, sizeof payload, "weights of step %llu", (unsigned long long)step);
    if (rank == 0) assert_int_equal(vt_ckpt_put(w, "model.bin", payload, strlen(payload), &err), VT_OK);
    if (rank == 1) assert_int_equal(vt_ckpt_put(w, "rank1.bin", "r1", 2, &err), VT_OK);
    vt_ckpt_info info = {.recipe = "stage1", .step = step, .epoch = 2, .step_in_epoch = step % 5,
                         .global_batch = 8, .seed = 7, .samples_seen = step * 8, .trainer_count = 2,
                         .config_yaml = CONFIG, .config_len = strlen(CONFIG), .n_rng = 1};
    info.rng_names[0] = "noise";
    vt_rng_init(&info.rng[0], 99);
    vt_rng_u32(&info.rng[0]);
    char path[PATH_MAX];
    assert_int_equal(vt_ckpt_commit(w, &info, path, &err), VT_OK);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/ckpt-%09llu", root, (unsigned long long)step);
    assert_string_equal(path, want);
}

static void corrupt(const char *name, const char *file, const char *content) {
    if (rank != 0) return;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s/%s", root, name, file);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void test_roundtrip(void **state) {
    (void)state;
    write_ckpt(5);
    MPI_Barrier(MPI_COMM_WORLD);
    vt_ckpt *c;
    vt_error err = {0};
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/ckpt-000000005", root);
    assert_int_equal(vt_ckpt_open(dir, &c, &err), VT_OK);
    const vt_ckpt_info *in = vt_ckpt_get_info(c);
    assert_string_equal(in->recipe, "stage1");
    assert_int_equal(in->step, 5);
    assert_int_equal(in->epoch, 2);
    assert_int_equal(in->step_in_epoch, 0);
    assert_int_equal(in->samples_seen, 40);
    assert_string_equal(in->config_yaml, CONFIG);
    char hex[65];
    vt_sha256_hex(CONFIG, strlen(CONFIG), hex);
    assert_string_equal(in->config_sha256, hex);
    assert_int_equal(in->n_rng, 1);
    assert_string_equal(in->rng_names[0], "noise");
    vt_rng want;
    vt_rng_init(&want, 99);
    vt_rng_u32(&want);
    vt_rng got = in->rng[0];
    for (int i = 0; i < 10; i++) assert_int_equal(vt_rng_u32(&got), vt_rng_u32(&want));
    char *data;
    size_t len;
    assert_int_equal(vt_ckpt_read(c, "model.bin", &data, &len, &err), VT_OK);
    assert_string_equal(data, "weights of step 5");
    free(data);
    assert_int_equal(vt_ckpt_read(c, "rank1.bin", &data, &len, &err), VT_OK);
    assert_int_equal(len, 2);
    free(data);
    assert_int_equal(vt_ckpt_read(c, "absent.bin", &data, &len, &err), VT_ERR_STATE);
    vt_ckpt_close(c);

    /* The same step twice is refused on every rank. */
    vt_ckpt_writer *w;
    assert_int_equal(vt_ckpt_begin(root, 5, MPI_COMM_WORLD, &w, &err), VT_ERR_STATE);
    assert_non_null(strstr(err.msg, "already exists"));
}

static void test_resume_skips_bad(void **state) {
    (void)state;
    vt_error err = {0};
    write_ckpt(6);
    write_ckpt(7);
    write_ckpt(8);
    write_ckpt(9);
    /* A half-written newer one: a .tmp dir with files but no rename... */
    vt_ckpt_writer *w;
    assert_int_equal(vt_ckpt_begin(root, 12, MPI_COMM_WORLD, &w, &err), VT_OK);
    if (rank == 0) assert_int_equal(vt_ckpt_put(w, "model.bin", "partial", 7, &err), VT_OK);
    /* (abandoned: no commit, as after a SIGKILL) */
    free(w);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        /* ...a renamed one without COMPLETE, one with a truncated file and
         * one whose meta.pb was replaced. */
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "%s/ckpt-000000009", root);
        snprintf(dst, sizeof dst, "%s/ckpt-000000011", root);
        assert_int_equal(rename(src, dst), 0);
        snprintf(src, sizeof src, "%s/COMPLETE", dst);
        assert_int_equal(remove(src), 0);
        corrupt("ckpt-000000008", "model.bin", "weights of");
        corrupt("ckpt-000000007", "meta.pb", "");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    char path[PATH_MAX];
    bool found;
    assert_int_equal(vt_ckpt_find_latest(root, path, sizeof path, &found, &err), VT_OK);
    assert_true(found);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/ckpt-000000006", root);
    assert_string_equal(path, want);

    vt_ckpt *c;
    snprintf(path, sizeof path, "%s/ckpt-000000011", root);
    assert_int_equal(vt_ckpt_open(path, &c, &err), VT_ERR_STATE);
    assert_non_null(strstr(err.msg, "no COMPLETE"));
    snprintf(path, sizeof path, "%s/ckpt-000000008", root);
    assert_int_equal(vt_ckpt_open(path, &c, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.bin: SHA-256 mismatch"));
    snprintf(path, sizeof path, "%s/ckpt-000000007", root);
    assert_int_equal(vt_ckpt_open(path, &c, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "COMPLETE"));
    snprintf(path, sizeof path, "%s/ckpt-000000012.tmp", root);
    assert_int_equal(vt_ckpt_open(path, &c, &err), VT_ERR_STATE);
    snprintf(path, sizeof path, "%s/nothing-here", root);
    assert_int_equal(vt_ckpt_open(path, &c, &err), VT_ERR_IO);

    snprintf(path, sizeof path, "%s/empty-root", root);
    assert_int_equal(vt_ckpt_find_latest(path, path, sizeof path, &found, &err), VT_OK);
    assert_false(found);
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_prune(void **state) {
    (void)state;
    vt_error err = {0};
    char r2[PATH_MAX];
    snprintf(r2, sizeof r2, "%s/prune", root);
    char saved[PATH_MAX];
    snprintf(saved, sizeof saved, "%s", root);
    snprintf(root, sizeof root, "%s", r2);
    for (uint64_t s = 1; s <= 7; s++) write_ckpt(s);
    vt_ckpt_writer *w;
    assert_int_equal(vt_ckpt_begin(root, 8, MPI_COMM_WORLD, &w, &err), VT_OK);
    free(w); /* a crashed write */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/ckpt-000000002", root);
        assert_int_equal(vt_ckpt_pin(p, &err), VT_OK);
        assert_int_equal(vt_ckpt_prune(root, 2, 3, &err), VT_OK);
        const char *keep[] = {"ckpt-000000002", "ckpt-000000003", "ckpt-000000006", "ckpt-000000007"};
        const char *gone[] = {"ckpt-000000001", "ckpt-000000004", "ckpt-000000005", "ckpt-000000008.tmp"};
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s", root, keep[i]);
            assert_true(vt_is_dir(p));
            snprintf(p, sizeof p, "%s/%s", root, gone[i]);
            assert_false(vt_path_exists(p));
        }
        assert_int_equal(vt_ckpt_prune(root, 0, 0, &err), VT_ERR_ARG);
    }
    snprintf(root, sizeof root, "%s", saved);
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_signal_agreement(void **state) {
    (void)state;
    vt_error err = {0};
    assert_int_equal(vt_signals_install(&err), VT_OK);
    vt_stop stop;
    assert_int_equal(vt_signals_agree(MPI_COMM_WORLD, &stop, &err), VT_OK);
    assert_int_equal(stop, VT_STOP_NONE);
    if (rank == 1) raise(SIGUSR1);
    assert_int_equal(vt_signals_agree(MPI_COMM_WORLD, &stop, &err), VT_OK);
    assert_int_equal(stop, VT_STOP_CHECKPOINT); /* rank 0 stops too */
    vt_signals_reset();
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    vt_leak_check_pause();
    MPI_Init(&argc, &argv);
    vt_leak_check_resume();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *t = getenv("VT_TEST_TMP");
    snprintf(root, sizeof root, "%s/ckpt", t ? t : "/tmp/vt-ckpt-test");
    if (rank == 0) vt_remove_tree(root, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_resume_skips_bad),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_signal_agreement),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return rc;
}
