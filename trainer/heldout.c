/* Train/val selection from the store's splits and the validation pass of
 * `vistune train` (see heldout.h). The pass runs the same forward and the
 * same greedy decoder as training and evaluation, so its numbers agree with
 * `vistune eval` on the same checkpoint and items. */
#include "trainer/heldout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sample.pb-c.h"
#include "trainer/eval_score.h"
#include "trainer/generate.h"

vt_status vt_heldout_split_build(vt_dataset *d, vt_heldout_split *out, vt_error *err) {
    memset(out, 0, sizeof *out);
    uint64_t n = vt_dataset_count(d);
    int *splits = malloc((n ? n : 1) * sizeof *splits);
    out->train = malloc((n ? n : 1) * sizeof *out->train);
    out->val = malloc((n ? n : 1) * sizeof *out->val);
    out->test = malloc((n ? n : 1) * sizeof *out->test);
    vt_status st = VT_OK;
    if (!splits || !out->train || !out->val || !out->test) {
        st = vt_fail(err, VT_ERR_NOMEM, "held-out split: out of memory for %llu samples", (unsigned long long)n);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        if ((st = vt_dataset_split(d, i, &splits[i], err))) goto done;
        if (splits[i] != VT__SPLIT__SPLIT_UNSPECIFIED) out->has_splits = true;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!out->has_splits || splits[i] == VT__SPLIT__SPLIT_TRAIN) out->train[out->n_train++] = i;
        else if (splits[i] == VT__SPLIT__SPLIT_VAL) out->val[out->n_val++] = i;
        else if (splits[i] == VT__SPLIT__SPLIT_TEST) out->test[out->n_test++] = i;
    }
done:
    free(splits);
    if (st) vt_heldout_split_free(out);
    return st;
}

void vt_heldout_split_free(vt_heldout_split *s) {
    free(s->train);
    free(s->val);
    free(s->test);
    memset(s, 0, sizeof *s);
}

void vt_val_result_free(vt_val_result *r) {
    for (size_t i = 0; i < r->n_types; i++) free(r->types[i].task);
    free(r->types);
    for (size_t i = 0; i < r->n_groups; i++) free(r->groups[i].task);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

/* The tally named `task` in a list kept in order by cmp (few entries: linear search). */
static vt_val_type *tally_slot(vt_val_type **list, size_t *n, const char *task, int (*cmp)(const char *, const char *),
                               vt_error *err) {
    size_t i = 0;
    for (; i < *n; i++) {
        int c = cmp((*list)[i].task, task);
        if (c == 0) return &(*list)[i];
        if (c > 0) break;
    }
    vt_val_type *t = realloc(*list, (*n + 1) * sizeof *t);
    char *name = strdup(task);
    if (!t || !name) {
        if (t) *list = t;
        free(name);
        vt_fail(err, VT_ERR_NOMEM, "validation: out of memory");
        return NULL;
    }
    *list = t;
    memmove(&t[i + 1], &t[i], (*n - i) * sizeof *t);
    t[i] = (vt_val_type){.task = name};
    (*n)++;
    return &t[i];
}

/* Group ids sort numerically (they are decimal text). */
static int cmp_group(const char *a, const char *b) {
    unsigned long x = strtoul(a, NULL, 10), y = strtoul(b, NULL, 10);
    return x < y ? -1 : x > y;
}

vt_status vt_val_result_add(vt_val_result *r, const char *task, uint32_t group, double score, vt_error *err) {
    char gname[16];
    snprintf(gname, sizeof gname, "%u", group);
    vt_val_type *t = tally_slot(&r->types, &r->n_types, task ? task : "", strcmp, err);
    if (!t) return VT_ERR_NOMEM;
    t->n++;
    t->correct += score;
    if (!(t = tally_slot(&r->groups, &r->n_groups, gname, cmp_group, err))) return VT_ERR_NOMEM;
    t->n++;
    t->correct += score;
    r->accuracy += score;
    r->n_items++;
    return VT_OK;
}

void vt_val_result_finish(vt_val_result *r, double loss_sum) {
    r->loss = r->loss_tokens > 0 ? loss_sum / (double)r->loss_tokens : NAN;
    r->accuracy = r->n_items ? r->accuracy / (double)r->n_items : NAN;
}

vt_status vt_validate(vt_model *m, vt_dataset *d, const uint64_t *items, size_t n, vt_batch *batch, int max_new,
                      vt_val_result *out, vt_error *err) {
    memset(out, 0, sizeof *out);
    const uint32_t B = batch->shape.batch;
    vt_status st = VT_OK;
    if (B == 0 || max_new < 1) return vt_fail(err, VT_ERR_ARG, "validation: empty batch or max_new < 1");
    int32_t *gen = malloc((size_t)B * (size_t)max_new * sizeof *gen), *gen_len = malloc(B * sizeof *gen_len);
    vt_eval_row *rows = calloc(B, sizeof *rows);
    if (!gen || !gen_len || !rows) {
        st = vt_fail(err, VT_ERR_NOMEM, "validation: out of memory");
        goto done;
    }
    vt_batch_source src = vt_dataset_source(d);
    vt_tokenizer *tok = vt_dataset_tokenizer(d);
    int32_t eos = vt_tokenizer_eos_id(tok), eot = vt_dataset_template(d)->end_of_turn;
    double loss_sum = 0;
    for (size_t at = 0; !st && at < n; at += B) {
        uint32_t k = (uint32_t)(n - at < B ? n - at : B);
        batch->shape.batch = k;
        batch->epoch = 0; /* jitter is off on the validation handle; epoch 0 by convention */
        batch->step = 0;
        memcpy(batch->sample_indices, items + at, k * sizeof *items);
        /* Held-out loss: the training row, forward only. */
        float loss = 0;
        if ((st = src.fill(src.ctx, batch, err))) break;
        if ((st = vt_model_forward(m, batch, VT_FORWARD_LOSS, &loss, err))) break;
        if (m->loss_count > 0) loss_sum += (double)loss * m->loss_count;
        out->loss_tokens += m->loss_count;
        /* Answers: the prompt row, greedy decoding, exact match. */
        if ((st = vt_dataset_fill_prompts(d, batch, max_new, NULL, NULL, rows, err))) break;
        if ((st = vt_generate_greedy(m, batch, max_new, eos, eot, gen, gen_len, err))) break;
        for (uint32_t b = 0; !st && b < k; b++) {
            char *text = NULL;
            size_t len = 0;
            if ((st = vt_tokenizer_decode(tok, gen + (size_t)b * max_new, (size_t)gen_len[b], VT_TOK_SKIP_SPECIAL,
                                          &text, &len, err)))
                break;
            float s = vt_score(VT_SCORE_EXACT, text, rows[b].reference);
            free(text);
            uint32_t group = 0;
            if ((st = vt_dataset_group(d, items[at + b], &group, err))) break;
            st = vt_val_result_add(out, rows[b].task, group, s, err);
        }
        for (uint32_t b = 0; b < k; b++) vt_eval_row_free(&rows[b]);
    }
    batch->shape.batch = B;
    vt_val_result_finish(out, loss_sum);
done:
    if (rows)
        for (uint32_t b = 0; b < B; b++) vt_eval_row_free(&rows[b]);
    free(gen);
    free(gen_len);
    free(rows);
    if (st) vt_val_result_free(out);
    return st;
}
