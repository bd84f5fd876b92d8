/* Round trips of every schema through protobuf-c, and rejection of
 * malformed bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/checkpoint.pb-c.h"
#include "proto/eval.pb-c.h"
#include "proto/sample.pb-c.h"
#include "proto/schema.h"
#include "proto/stream.pb-c.h"

static void test_sample_roundtrip(void **state) {
    (void)state;
    Vt__Image img = VT__IMAGE__INIT;
    uint8_t webp[5] = {'R', 'I', 'F', 'F', 0};
    img.webp.data = webp;
    img.webp.len = sizeof webp;
    img.width = 336;
    img.height = 224;
    Vt__Turn t0 = VT__TURN__INIT, t1 = VT__TURN__INIT;
    t0.role = VT__ROLE__ROLE_USER;
    t0.text = "<image>\nWhat colour is the circle?";
    t1.role = VT__ROLE__ROLE_ASSISTANT;
    t1.text = "red";
    Vt__Turn *turns[2] = {&t0, &t1};
    Vt__Provenance prov = VT__PROVENANCE__INIT;
    prov.source = "synth";
    prov.source_id = "000042";
    Vt__Sample s = VT__SAMPLE__INIT;
    s.schema_version = VT_SCHEMA_VERSION;
    s.index = 42;
    s.image = &img;
    s.n_turns = 2;
    s.turns = turns;
    s.task = "color";
    s.group_id = 7;
    s.split = VT__SPLIT__SPLIT_VAL;
    s.provenance = &prov;

    size_t n = vt__sample__get_packed_size(&s);
    uint8_t *buf = malloc(n);
    assert_int_equal(vt__sample__pack(&s, buf), n);
    Vt__Sample *back = vt__sample__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->schema_version, VT_SCHEMA_VERSION);
    assert_int_equal(back->index, 42);
    assert_int_equal(back->image->width, 336);
    assert_int_equal(back->image->webp.len, sizeof webp);
    assert_memory_equal(back->image->webp.data, webp, sizeof webp);
    assert_int_equal(back->n_turns, 2);
    assert_int_equal(back->turns[1]->role, VT__ROLE__ROLE_ASSISTANT);
    assert_string_equal(back->turns[0]->text, t0.text);
    assert_string_equal(back->task, "color");
    assert_int_equal(back->group_id, 7);
    assert_int_equal(back->split, VT__SPLIT__SPLIT_VAL);
    assert_string_equal(back->provenance->source_id, "000042");
    vt__sample__free_unpacked(back, NULL);

    /* Every truncation of a valid record either fails or decodes a prefix
     * without reading out of bounds (ASan watches). The full-length cut of
     * a length-delimited field must fail. */
    for (size_t cut = 0; cut < n; cut++) {
        Vt__Sample *p = vt__sample__unpack(NULL, cut, buf);
        if (p) vt__sample__free_unpacked(p, NULL);
    }
    assert_null(vt__sample__unpack(NULL, n - 1, buf));
    free(buf);
    uint8_t garbage[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_null(vt__sample__unpack(NULL, sizeof garbage, garbage));
}

static void test_stream_message_oneof(void **state) {
    (void)state;
    Vt__BatchRequest req = VT__BATCH_REQUEST__INIT;
    req.request_id = 9;
    req.epoch = 1;
    req.step = 77;
    req.trainer_rank = 3;
    req.trainer_count = 4;
    Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
    m.kind_case = VT__STREAM_MESSAGE__KIND_REQUEST;
    m.request = &req;
    size_t n = vt__stream_message__get_packed_size(&m);
    uint8_t buf[256];
    assert_true(n < sizeof buf);
    vt__stream_message__pack(&m, buf);
    Vt__StreamMessage *back = vt__stream_message__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->kind_case, VT__STREAM_MESSAGE__KIND_REQUEST);
    assert_int_equal(back->request->step, 77);
    assert_int_equal(back->request->trainer_rank, 3);
    vt__stream_message__free_unpacked(back, NULL);

    Vt__FrameDesc f = VT__FRAME_DESC__INIT;
    f.name = "pixels";
    f.dtype = VT__DTYPE__DTYPE_F32;
    uint64_t shape[4] = {2, 3, 32, 32};
    f.shape = shape;
    f.n_shape = 4;
    f.nbytes = 2 * 3 * 32 * 32 * 4;
    Vt__FrameDesc *frames[1] = {&f};
    uint64_t idx[2] = {5, 11};
    Vt__BatchHeader h = VT__BATCH_HEADER__INIT;
    h.request_id = 9;
    h.batch_size = 2;
    h.sample_indices = idx;
    h.n_sample_indices = 2;
    h.frames = frames;
    h.n_frames = 1;
    m.kind_case = VT__STREAM_MESSAGE__KIND_BATCH;
    m.batch = &h;
    n = vt__stream_message__get_packed_size(&m);
    vt__stream_message__pack(&m, buf);
    back = vt__stream_message__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->kind_case, VT__STREAM_MESSAGE__KIND_BATCH);
    assert_int_equal(back->batch->n_frames, 1);
    assert_int_equal(back->batch->frames[0]->shape[3], 32);
    assert_int_equal(back->batch->sample_indices[1], 11);
    vt__stream_message__free_unpacked(back, NULL);
}

static void test_eval_and_checkpoint(void **state) {
    (void)state;
    Vt__EvalTask t = VT__EVAL_TASK__INIT;
    t.task_id = "ck1/shapes/gaussian_noise/3/0";
    t.shift = "gaussian_noise";
    t.severity = 3;
    t.shard_count = 4;
    Vt__ItemResult it = VT__ITEM_RESULT__INIT;
    it.index = 12;
    it.prediction = "red";
    it.reference = "red";
    it.score = 1.0f;
    Vt__ItemResult *items[1] = {&it};
    Vt__EvalResult r = VT__EVAL_RESULT__INIT;
    r.task = &t;
    r.items = items;
    r.n_items = 1;
    uint8_t buf[512];
    size_t n = vt__eval_result__pack(&r, buf);
    Vt__EvalResult *rb = vt__eval_result__unpack(NULL, n, buf);
    assert_non_null(rb);
    assert_string_equal(rb->task->task_id, t.task_id);
    assert_int_equal(rb->task->severity, 3);
    assert_true(rb->items[0]->score == 1.0f);
    vt__eval_result__free_unpacked(rb, NULL);

    Vt__CheckpointMeta c = VT__CHECKPOINT_META__INIT;
    c.step = 1000;
    c.step_in_epoch = 40;
    c.recipe = "stage2";
    Vt__CheckpointMeta__FilesSha256Entry e = VT__CHECKPOINT_META__FILES_SHA256_ENTRY__INIT;
    e.key = "model.safetensors";
    e.value = "abcd";
    Vt__CheckpointMeta__FilesSha256Entry *entries[1] = {&e};
    c.files_sha256 = entries;
    c.n_files_sha256 = 1;
    n = vt__checkpoint_meta__pack(&c, buf);
    Vt__CheckpointMeta *cb = vt__checkpoint_meta__unpack(NULL, n, buf);
    assert_non_null(cb);
    assert_int_equal(cb->step, 1000);
    assert_string_equal(cb->files_sha256[0]->key, "model.safetensors");
    vt__checkpoint_meta__free_unpacked(cb, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_roundtrip),
        cmocka_unit_test(test_stream_message_oneof),
        cmocka_unit_test(test_eval_and_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
