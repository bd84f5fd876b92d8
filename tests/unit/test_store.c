/* pipeline/store: write/read round trip with zero-copy access and the wire
 * peek, map growth from a tiny map, the map cap as a clean failure that
 * leaves no directory, refusal to overwrite, overwrite, unwritable parents,
 * and reader errors that name the key. */
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

#include "common/fs.h"
#include "common/rng.h"
#include "pipeline/store.h"
#include "proto/schema.h"

static char tmpdir[512];

static int setup(void **state) {
    (void)state;
    const char *t = getenv("VT_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/store", t ? t : "/tmp/vt-test-store");
    vt_remove_tree(tmpdir, NULL);
    return vt_mkdir_p(tmpdir, NULL) == VT_OK ? 0 : -1;
}

/* A sample whose payload is `bytes` pseudo-random bytes derived from i. */
typedef struct owned_sample {
    Vt__Sample s;
    Vt__Image img;
    Vt__Turn t0, t1;
    Vt__Turn *turns[2];
    uint8_t *payload;
    char text[64];
} owned_sample;

static void make_sample(owned_sample *o, uint64_t i, size_t bytes) {
    vt__sample__init(&o->s);
    vt__image__init(&o->img);
    vt__turn__init(&o->t0);
    vt__turn__init(&o->t1);
    o->payload = malloc(bytes);
    vt_rng r;
    vt_rng_init(&r, i);
    for (size_t k = 0; k < bytes; k++) o->payload[k] = (uint8_t)vt_rng_u32(&r);
    o->img.webp.data = o->payload;
    o->img.webp.len = bytes;
    o->img.width = (uint32_t)(10 + i);
    o->img.height = (uint32_t)(20 + i);
    snprintf(o->text, sizeof o->text, "<image>\nquestion %llu", (unsigned long long)i);
    o->t0.role = VT__ROLE__ROLE_USER;
    o->t0.text = o->text;
    o->t1.role = VT__ROLE__ROLE_ASSISTANT;
    o->t1.text = "answer";
    o->turns[0] = &o->t0;
    o->turns[1] = &o->t1;
    o->s.image = &o->img;
    o->s.n_turns = 2;
    o->s.turns = o->turns;
    o->s.task = i % 2 ? "color" : "count";
    o->s.group_id = (uint32_t)(i % 3);
    o->s.split = i % 4 == 0 ? VT__SPLIT__SPLIT_VAL : VT__SPLIT__SPLIT_TRAIN;
}

static void write_store(const char *dir, int n, size_t bytes, const vt_store_writer_opts *o) {
    vt_store_writer *w;
    vt_error e = {0};
    if (vt_store_writer_open(dir, o, &w, &e) != VT_OK) fail_msg("%s", e.msg);
    for (int i = 0; i < n; i++) {
        owned_sample s;
        make_sample(&s, (uint64_t)i, bytes);
        uint64_t idx;
        if (vt_store_writer_put(w, &s.s, &idx, &e) != VT_OK) fail_msg("%s", e.msg);
        assert_int_equal(idx, (uint64_t)i);
        free(s.payload);
    }
    assert_int_equal(vt_store_writer_reject(w, 99, "bad-1", "corrupt_image", "x.png: truncated", &e),
                     VT_OK);
    vt_store_writer_manifest_add(w, "note", cJSON_CreateString("unit test"));
    if (vt_store_writer_finish(w, &e) != VT_OK) fail_msg("%s", e.msg);
}

static void test_roundtrip_and_growth(void **state) {
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/db", tmpdir);
    /* 64 KiB initial map, 60 records of 3 KB, commits every 7: grows several times. */
    vt_store_writer_opts o = {.map_size = 64 << 10, .commit_every = 7, .source = "test"};
    write_store(dir, 60, 3000, &o);

    vt_store *s;
    vt_error e = {0};
    if (vt_store_open(dir, &s, &e) != VT_OK) fail_msg("%s", e.msg);
    assert_int_equal(vt_store_count(s), 60);
    const cJSON *m = vt_store_manifest(s);
    assert_int_equal(cJSON_GetObjectItem(m, "count")->valueint, 60);
    assert_int_equal(cJSON_GetObjectItem(m, "rejected")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(m, "input_count")->valueint, 61);
    assert_int_equal(cJSON_GetObjectItem(m, "schema_version")->valueint, (int)VT_SCHEMA_VERSION);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "splits"), "val")->valueint, 15);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "tasks"), "color")->valueint, 30);
    assert_int_equal(cJSON_GetObjectItem(m, "image_bytes")->valuedouble, 60 * 3000);
    assert_string_equal(cJSON_GetObjectItem(m, "source")->valuestring, "test");
    assert_string_equal(cJSON_GetObjectItem(m, "note")->valuestring, "unit test");
    assert_true(cJSON_GetObjectItem(m, "map_size")->valuedouble > 64 << 10);
    assert_int_equal(strlen(cJSON_GetObjectItem(m, "content_sha256")->valuestring), 64);

    vt_store_txn *t;
    assert_int_equal(vt_store_txn_begin(s, &t, NULL), VT_OK);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 60; i++) {
            owned_sample want;
            make_sample(&want, i, 3000);
            Vt__Sample *got;
            if (vt_store_get_sample(t, i, NULL, &got, &e) != VT_OK) fail_msg("%s", e.msg);
            assert_int_equal(got->index, i);
            assert_int_equal(got->schema_version, VT_SCHEMA_VERSION);
            assert_string_equal(got->turns[0]->text, want.text);
            assert_int_equal(got->split, want.s.split);
            assert_memory_equal(got->image->webp.data, want.payload, 3000);
            vt__sample__free_unpacked(got, NULL);
            /* zero-copy path: the WebP bytes inside the map */
            const uint8_t *raw;
            size_t len;
            assert_int_equal(vt_store_get_raw(t, i, &raw, &len, NULL), VT_OK);
            vt_sample_image_ref ref;
            assert_int_equal(vt_sample_peek_image(raw, len, &ref, NULL), VT_OK);
            assert_true(ref.webp > raw && ref.webp + ref.webp_len <= raw + len);
            assert_int_equal(ref.webp_len, 3000);
            assert_int_equal(ref.width, 10 + i);
            assert_int_equal(ref.height, 20 + i);
            assert_memory_equal(ref.webp, want.payload, 3000);
            free(want.payload);
        }
        vt_store_txn_reset(t);
        assert_int_equal(vt_store_txn_renew(t, NULL), VT_OK);
    }
    assert_int_equal(vt_store_get_sample(t, 60, NULL, &(Vt__Sample *){NULL}, &e), VT_ERR_RANGE);
    assert_non_null(strstr(e.msg, "key 000000000060"));
    vt_store_txn_end(t);
    vt_store_close(s);

    /* rejects.jsonl holds the reject line; no temporary siblings remain. */
    char path[700], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/rejects.jsonl", dir);
    assert_int_equal(vt_read_file(path, 1 << 20, &text, &len, NULL), VT_OK);
    assert_non_null(strstr(text, "\"reason\":\"corrupt_image\""));
    free(text);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -d %s/db.tmp.* 2>/dev/null | grep -q .", tmpdir);
    assert_int_not_equal(system(cmd), 0);

    /* The same input gives the same content hash. */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/db2", tmpdir);
    vt_store_writer_opts o2 = {.commit_every = 1000, .source = "test"};
    write_store(dir2, 60, 3000, &o2);
    vt_store *s2;
    assert_int_equal(vt_store_open(dir, &s, NULL), VT_OK);
    assert_int_equal(vt_store_open(dir2, &s2, NULL), VT_OK);
    assert_string_equal(cJSON_GetObjectItem(vt_store_manifest(s), "content_sha256")->valuestring,
                        cJSON_GetObjectItem(vt_store_manifest(s2), "content_sha256")->valuestring);
    vt_store_close(s);
    vt_store_close(s2);
}

static void test_map_full_leaves_nothing(void **state) {
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/full", tmpdir);
    vt_store_writer_opts o = {.map_size = 64 << 10, .max_map_size = 256 << 10, .commit_every = 5};
    vt_store_writer *w;
    vt_error e = {0};
    assert_int_equal(vt_store_writer_open(dir, &o, &w, &e), VT_OK);
    vt_status st = VT_OK;
    for (int i = 0; i < 200 && st == VT_OK; i++) {
        owned_sample s;
        make_sample(&s, (uint64_t)i, 4000);
        st = vt_store_writer_put(w, &s.s, NULL, &e);
        free(s.payload);
    }
    assert_int_equal(st, VT_ERR_RANGE);
    assert_non_null(strstr(e.msg, "map full"));
    /* A failed writer refuses to finish and leaves no directory behind. */
    assert_int_not_equal(vt_store_writer_finish(w, &e), VT_OK);
    assert_false(vt_path_exists(dir));
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -d %s/full.tmp.* 2>/dev/null | grep -q .", tmpdir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_existing_and_overwrite(void **state) {
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/exists", tmpdir);
    vt_store_writer_opts o = {0};
    write_store(dir, 3, 10, &o);
    vt_store_writer *w;
    vt_error e = {0};
    assert_int_equal(vt_store_writer_open(dir, &o, &w, &e), VT_ERR_STATE);
    assert_non_null(strstr(e.msg, "already exists"));
    o.overwrite = true;
    write_store(dir, 5, 10, &o);
    vt_store *s;
    assert_int_equal(vt_store_open(dir, &s, NULL), VT_OK);
    assert_int_equal(vt_store_count(s), 5);
    vt_store_close(s);
    /* Aborting keeps the old store intact. */
    assert_int_equal(vt_store_writer_open(dir, &o, &w, &e), VT_OK);
    vt_store_writer_abort(w);
    assert_int_equal(vt_store_open(dir, &s, NULL), VT_OK);
    assert_int_equal(vt_store_count(s), 5);
    vt_store_close(s);
}

static void test_bad_paths(void **state) {
    (void)state;
    vt_store_writer *w;
    vt_error e = {0};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/no/such/parent/db", tmpdir);
    assert_int_equal(vt_store_writer_open(dir, NULL, &w, &e), VT_ERR_IO);
    assert_non_null(strstr(e.msg, "does not exist"));
    /* A parent nobody may write to: a 0555 directory, or /proc for root. */
    char ro[600];
    snprintf(ro, sizeof ro, "%s/readonly", tmpdir);
    vt_mkdir_p(ro, NULL);
    chmod(ro, 0555);
    snprintf(dir, sizeof dir, "%s/db", geteuid() == 0 ? "/proc" : ro);
    assert_int_equal(vt_store_writer_open(dir, NULL, &w, &e), VT_ERR_IO);
    assert_non_null(strstr(e.msg, dir));
    chmod(ro, 0755);

    vt_store *s;
    snprintf(dir, sizeof dir, "%s/missing", tmpdir);
    assert_int_equal(vt_store_open(dir, &s, &e), VT_ERR_IO);
    assert_non_null(strstr(e.msg, "missing"));
    /* A directory with a manifest that lies about the count. */
    snprintf(dir, sizeof dir, "%s/liar", tmpdir);
    vt_store_writer_opts o = {0};
    write_store(dir, 4, 10, &o);
    char path[700];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    const char *fake = "{\"format\":\"vistune-store\",\"schema_version\":1,\"count\":5}";
    assert_int_equal(vt_write_file_atomic(path, fake, strlen(fake), NULL), VT_OK);
    assert_int_equal(vt_store_open(dir, &s, &e), VT_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "manifest says 5 records but LMDB holds 4"));
    const char *future = "{\"format\":\"vistune-store\",\"schema_version\":99,\"count\":4}";
    assert_int_equal(vt_write_file_atomic(path, future, strlen(future), NULL), VT_OK);
    assert_int_equal(vt_store_open(dir, &s, &e), VT_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "schema_version 99"));

    /* Peek refuses damaged records. */
    uint8_t junk[3] = {0x1a, 0xff, 0xff};
    vt_sample_image_ref ref;
    assert_int_equal(vt_sample_peek_image(junk, 3, &ref, &e), VT_ERR_FORMAT);
    uint8_t noimg[2] = {0x10, 0x05};
    assert_int_equal(vt_sample_peek_image(noimg, 2, &ref, &e), VT_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "no image"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_growth),
        cmocka_unit_test(test_map_full_leaves_nothing),
        cmocka_unit_test(test_existing_and_overwrite),
        cmocka_unit_test(test_bad_paths),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
