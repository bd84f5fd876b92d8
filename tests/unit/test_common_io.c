/* SHA-256 (FIPS vectors and sha256sum), the arena, and the durable
 * file-system helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/arena.h"
#include "common/fs.h"
#include "common/rng.h"
#include "common/sha256.h"

static const char *scratch(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

static void test_sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    vt_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    vt_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    vt_sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in odd-sized pieces to exercise buffering. */
    vt_sha256 s;
    vt_sha256_init(&s);
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        vt_sha256_update(&s, chunk, n);
        left -= n;
    }
    unsigned char d[32];
    vt_sha256_final(&s, d);
    vt_hex_encode(d, 32, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_matches_coreutils(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/sha_input.bin", scratch());
    enum { N = 123457 };
    unsigned char *buf = malloc(N);
    vt_rng r;
    vt_rng_init(&r, 7);
    for (int i = 0; i < N; i++) buf[i] = (unsigned char)vt_rng_u32(&r);
    vt_error err = {0};
    assert_int_equal(vt_write_file_atomic(path, buf, N, &err), VT_OK);
    char cmd[600], want[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%64s", want), 1);
    pclose(p);
    char got[65];
    vt_sha256_hex(buf, N, got);
    assert_string_equal(got, want);
    free(buf);
}

static void test_arena(void **state) {
    (void)state;
    vt_arena a;
    vt_arena_init(&a, 1024);
    char *s = vt_arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    vt_arena_mark m = vt_arena_get_mark(&a);
    size_t before = vt_arena_used(&a);
    for (int i = 0; i < 100; i++) {
        double *d = vt_arena_alloc(&a, 100 * sizeof(double), 64);
        assert_non_null(d);
        assert_int_equal((uintptr_t)d % 64, 0);
        d[99] = i; /* writable to the end (ASan checks) */
    }
    int *z = vt_arena_calloc(&a, 5000, sizeof(int));
    for (int i = 0; i < 5000; i++) assert_int_equal(z[i], 0);
    vt_arena_reset(&a, m);
    assert_int_equal(vt_arena_used(&a), before);
    assert_string_equal(s, "hello");
    assert_null(vt_arena_alloc(&a, 8, 3)); /* not a power of two */
    assert_null(vt_arena_calloc(&a, SIZE_MAX / 2, 4)); /* overflow */
    vt_arena_free(&a);
    assert_int_equal(vt_arena_used(&a), 0);
}

static void test_fs_roundtrip_and_errors(void **state) {
    (void)state;
    vt_error err = {0};
    char dir[512], file[600], nested[600];
    snprintf(dir, sizeof dir, "%s/fs_case", scratch());
    vt_remove_tree(dir, &err);
    snprintf(nested, sizeof nested, "%s/a/b/c", dir);
    assert_int_equal(vt_mkdir_p(nested, &err), VT_OK);
    assert_true(vt_is_dir(nested));
    assert_int_equal(vt_mkdir_p(nested, &err), VT_OK); /* idempotent */
    assert_int_equal(vt_path_join(file, sizeof file, nested, "x.txt", &err), VT_OK);
    assert_int_equal(vt_write_file_atomic(file, "first", 5, &err), VT_OK);
    assert_int_equal(vt_write_file_atomic(file, "second!", 7, &err), VT_OK);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_read_file(file, 100, &data, &len, &err), VT_OK);
    assert_int_equal(len, 7);
    assert_string_equal(data, "second!");
    free(data);
    /* No temporary file is left behind. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    assert_false(vt_path_exists(tmp));
    assert_int_equal(vt_read_file(file, 3, &data, &len, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "exceeds the limit"));
    assert_int_equal(vt_read_file(nested, 100, &data, &len, &err), VT_ERR_IO);
    assert_non_null(strstr(err.msg, "is a directory"));
    /* A file where a directory is wanted. */
    assert_int_equal(vt_mkdir_p(file, &err), VT_ERR_IO);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/f", dir);
    assert_int_equal(vt_write_file_atomic(bad, "x", 1, &err), VT_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot create"));
    assert_int_equal(vt_remove_tree(dir, &err), VT_OK);
    assert_false(vt_path_exists(dir));
    assert_int_equal(vt_remove_tree("/", &err), VT_ERR_ARG);
    assert_int_equal(vt_remove_tree("", &err), VT_ERR_ARG);
    char joined[16];
    assert_int_equal(vt_path_join(joined, sizeof joined, "averyveryverylongdir", "f", &err), VT_ERR_RANGE);
    assert_int_equal(vt_path_join(joined, sizeof joined, "a/", "/abs", &err), VT_OK);
    assert_string_equal(joined, "/abs");
    char dn[64];
    vt_dirname("x.txt", dn, sizeof dn);
    assert_string_equal(dn, ".");
    vt_dirname("/x.txt", dn, sizeof dn);
    assert_string_equal(dn, "/");
    vt_dirname("a/b/x.txt", dn, sizeof dn);
    assert_string_equal(dn, "a/b");
}

static void test_unwritable_directory(void **state) {
    (void)state;
    if (geteuid() == 0) skip(); /* root ignores permission bits */
    vt_error err = {0};
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s/ro_dir", scratch());
    vt_mkdir_p(dir, &err);
    chmod(dir, 0555);
    snprintf(file, sizeof file, "%s/f", dir);
    assert_int_equal(vt_write_file_atomic(file, "x", 1, &err), VT_ERR_IO);
    chmod(dir, 0755);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_sha256_matches_coreutils),
        cmocka_unit_test(test_arena),          cmocka_unit_test(test_fs_roundtrip_and_errors),
        cmocka_unit_test(test_unwritable_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
