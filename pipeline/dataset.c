/* The dataset reader (see dataset.h): store record -> image + tokens in a batch row.
 * One dataset handle is used by one thread at a time (it owns its read transaction
 * and scratch buffers); parallelism comes from several loader processes or
 * ranks, each answering whole batches. */
#include "pipeline/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "pipeline/image.h"
#include "pipeline/store.h"
#include "proto/sample.pb-c.h"

/* CLIP's normalisation (openai/clip-vit-*). */
static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

struct vt_dataset {
    vt_dataset_config c;
    vt_store *store;
    vt_store_txn *txn;
    vt_tokenizer *tok;
    vt_chat_template tpl;
    uint8_t *rgb;    /* image_size^2 * 3 */
    int32_t *ids;    /* seq_len + 1 */
    uint8_t *mask;
};

void vt_dataset_config_default(vt_dataset_config *c) {
    memset(c, 0, sizeof *c);
    c->tokenizer = "builtin:bytes";
    c->template_name = "vicuna_v1";
}

vt_status vt_dataset_config_read(const vt_config *cfg, vt_dataset_config *c, vt_error *err) {
    static const char *const templates[] = {"plain", "vicuna_v1", "chatml"};
    vt_status st;
    int which = -1;
    if ((st = vt_config_string(cfg, "data.store", &c->store, err))) return st;
    if ((st = vt_config_string(cfg, "data.tokenizer", &c->tokenizer, err))) return st;
    if ((st = vt_config_enum(cfg, "data.template", templates, 3, &which, err))) return st;
    if (which >= 0) c->template_name = templates[which];
    if ((st = vt_config_string(cfg, "data.system_prompt", &c->system, err))) return st;
    if ((st = vt_config_double(cfg, "data.augment.jitter", &c->jitter, err))) return st;
    if (!(c->jitter >= 0 && c->jitter < 1))
        return vt_fail(err, VT_ERR_RANGE, "%s: data.augment.jitter %g is outside [0, 1)", vt_config_name(cfg),
                       c->jitter);
    return VT_OK;
}

void vt_dataset_close(vt_dataset *l) {
    if (!l) return;
    if (l->txn) vt_store_txn_end(l->txn);
    vt_store_close(l->store);
    vt_chat_template_free(&l->tpl);
    vt_tokenizer_free(l->tok);
    free(l->rgb);
    free(l->ids);
    free(l->mask);
    free(l);
}

vt_status vt_dataset_open(const vt_dataset_config *c, vt_dataset **out, vt_error *err) {
    *out = NULL;
    if (!c->store) return vt_fail(err, VT_ERR_ARG, "dataset: no store given (data.store)");
    if (c->image_size <= 0 || c->seq_len <= 1 || c->n_image_tokens < 0)
        return vt_fail(err, VT_ERR_ARG, "dataset: image size %d, sequence length %d, %d image tokens are invalid",
                       c->image_size, c->seq_len, c->n_image_tokens);
    vt_dataset *l = calloc(1, sizeof *l);
    if (!l) return vt_fail(err, VT_ERR_NOMEM, "dataset: out of memory");
    l->c = *c;
    size_t S = (size_t)c->image_size;
    l->rgb = malloc(S * S * 3);
    l->ids = malloc(((size_t)c->seq_len + 1) * sizeof *l->ids);
    l->mask = malloc((size_t)c->seq_len + 1);
    vt_status st = (!l->rgb || !l->ids || !l->mask) ? vt_fail(err, VT_ERR_NOMEM, "dataset: out of memory") : VT_OK;
    if (!st) st = vt_store_open(c->store, &l->store, err);
    if (!st) st = vt_store_txn_begin(l->store, &l->txn, err);
    if (!st) st = vt_tokenizer_open(c->tokenizer, &l->tok, err);
    if (!st) st = vt_chat_template_init(&l->tpl, c->template_name, c->system, l->tok, err);
    if (!st && vt_store_count(l->store) == 0) st = vt_fail(err, VT_ERR_ARG, "%s: the store is empty", c->store);
    if (st) {
        vt_dataset_close(l);
        return st;
    }
    vt_store_txn_reset(l->txn);
    *out = l;
    return VT_OK;
}

uint64_t vt_dataset_count(const vt_dataset *l) { return vt_store_count(l->store); }
vt_tokenizer *vt_dataset_tokenizer(vt_dataset *l) { return l->tok; }
const vt_chat_template *vt_dataset_template(const vt_dataset *l) { return &l->tpl; }
int32_t vt_dataset_vocab_size(const vt_dataset *l) { return vt_tokenizer_vocab_size(l->tok); }

/* Decodes sample `index`'s image into l->rgb at the model's size and unpacks
 * the record's text. The WebP bytes are read in place from the map. */
static vt_status read_sample(vt_dataset *l, uint64_t index, Vt__Sample **sample, vt_error *err) {
    const uint8_t *data;
    size_t len;
    vt_status st = vt_store_get_raw(l->txn, index, &data, &len, err);
    if (st) return st;
    char name[512];
    snprintf(name, sizeof name, "%s: sample %012llu", vt_store_path(l->store), (unsigned long long)index);
    vt_sample_image_ref ref;
    if ((st = vt_sample_peek_image(data, len, &ref, err))) {
        vt_error_prefix(err, "%s: ", name);
        return st;
    }
    int S = l->c.image_size;
    if ((int)ref.width == S && (int)ref.height == S) {
        st = vt_webp_decode_into(ref.webp, ref.webp_len, name, NULL, l->rgb, (size_t)S * 3, S, S, err);
    } else { /* a store made at another size: resize (stores hold square images) */
        vt_image img = {0}, sized = {0};
        st = vt_webp_decode(ref.webp, ref.webp_len, name, NULL, &img, err);
        if (!st) st = vt_image_resize(&img, S, S, &sized, err);
        if (!st) memcpy(l->rgb, sized.rgb, (size_t)S * S * 3);
        vt_image_free(&img);
        vt_image_free(&sized);
    }
    if (st) return st;
    *sample = vt__sample__unpack(NULL, len, data);
    if (!*sample) return vt_fail(err, VT_ERR_FORMAT, "%s: record does not decode (%zu bytes)", name, len);
    return VT_OK;
}

/* Seeded brightness/contrast jitter, then CLIP normalisation into [3,S,S]. */
static void normalise(const vt_dataset *l, uint64_t epoch, uint64_t index, float *dst) {
    size_t n = (size_t)l->c.image_size * l->c.image_size;
    float brightness = 1.0f, contrast = 1.0f;
    if (l->c.jitter > 0) {
        vt_rng r;
        vt_rng_init(&r, vt_hash4(l->c.seed, epoch, index, 0x617567ull /* "aug" */));
        brightness = 1.0f + (float)l->c.jitter * (2.0f * vt_rng_uniform(&r) - 1.0f);
        contrast = 1.0f + (float)l->c.jitter * (2.0f * vt_rng_uniform(&r) - 1.0f);
    }
    for (int ch = 0; ch < 3; ch++) {
        float *plane = dst + (size_t)ch * n;
        for (size_t i = 0; i < n; i++) {
            float x = (float)l->rgb[i * 3 + (size_t)ch] * (1.0f / 255.0f);
            if (l->c.jitter > 0) {
                x = (x * brightness - 0.5f) * contrast + 0.5f;
                x = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
            }
            plane[i] = (x - clip_mean[ch]) / clip_std[ch];
        }
    }
}

static void to_turns(const Vt__Sample *s, vt_chat_turn *turns, size_t n) {
    for (size_t i = 0; i < n; i++) {
        turns[i].role = (int)s->turns[i]->role;
        turns[i].text = s->turns[i]->text;
        turns[i].len = strlen(s->turns[i]->text);
    }
}

static vt_status fill_training(void *ctx, vt_batch *out, vt_error *err) {
    vt_dataset *l = ctx;
    const int T = (int)out->shape.seq_len, S = l->c.image_size;
    if (T != l->c.seq_len || (int)out->shape.height != S || (int)out->shape.width != S || out->shape.channels != 3)
        return vt_fail(err, VT_ERR_ARG, "dataset: batch shape %ux%u, T=%u does not match the dataset's %dx%d, T=%d",
                       out->shape.height, out->shape.width, out->shape.seq_len, S, S, l->c.seq_len);
    vt_status st = vt_store_txn_renew(l->txn, err);
    if (st) return st;
    size_t plane = (size_t)3 * S * S;
    for (uint32_t b = 0; b < out->shape.batch && !st; b++) {
        uint64_t index = out->sample_indices[b];
        Vt__Sample *s = NULL;
        st = read_sample(l, index, &s, err);
        if (st) break;
        normalise(l, out->epoch, index, out->pixels + b * plane);
        vt_chat_turn turns[64];
        size_t nt = s->n_turns < 64 ? s->n_turns : 64;
        to_turns(s, turns, nt);
        vt_chat_result res;
        /* T + 1 ids give T inputs and their T next-token targets. */
        st = vt_chat_encode(&l->tpl, l->tok, turns, nt, l->c.n_image_tokens, (size_t)T + 1, true, l->ids, l->mask,
                            &res, err);
        if (st) vt_error_prefix(err, "%s: sample %012llu: ", vt_store_path(l->store), (unsigned long long)index);
        else {
            int32_t *tok = out->tokens + (size_t)b * T, *tgt = out->targets + (size_t)b * T;
            uint8_t *m = out->loss_mask + (size_t)b * T;
            memcpy(tok, l->ids, (size_t)T * sizeof *tok);
            memcpy(tgt, l->ids + 1, (size_t)T * sizeof *tgt);
            memcpy(m, l->mask + 1, (size_t)T);
            out->lengths[b] = (int32_t)(res.length < (size_t)T ? res.length : (size_t)T);
        }
        vt__sample__free_unpacked(s, NULL);
    }
    vt_store_txn_reset(l->txn);
    return st;
}

vt_batch_source vt_dataset_source(vt_dataset *l) {
    vt_batch_source src = {fill_training, l, {0, 3, (uint32_t)l->c.image_size, (uint32_t)l->c.image_size,
                                              (uint32_t)l->c.seq_len}};
    return src;
}

vt_status vt_dataset_split(vt_dataset *l, uint64_t index, int *split, vt_error *err) {
    vt_status st = vt_store_txn_renew(l->txn, err);
    if (st) return st;
    Vt__Sample *s = NULL;
    st = vt_store_get_sample(l->txn, index, NULL, &s, err);
    if (!st) {
        *split = (int)s->split;
        vt__sample__free_unpacked(s, NULL);
    }
    vt_store_txn_reset(l->txn);
    return st;
}

vt_status vt_dataset_group(vt_dataset *l, uint64_t index, uint32_t *group, vt_error *err) {
    vt_status st = vt_store_txn_renew(l->txn, err);
    if (st) return st;
    Vt__Sample *s = NULL;
    st = vt_store_get_sample(l->txn, index, NULL, &s, err);
    if (!st) {
        *group = s->group_id;
        vt__sample__free_unpacked(s, NULL);
    }
    vt_store_txn_reset(l->txn);
    return st;
}

void vt_eval_row_free(vt_eval_row *r) {
    free(r->question);
    free(r->reference);
    free(r->task);
    memset(r, 0, sizeof *r);
}

static char *dup_text(const char *s) { return strdup(s ? s : ""); }

/* One prompt row: the conversation up to (not including) its last answer. */
static vt_status prompt_row(vt_dataset *l, vt_batch *out, uint32_t b, int max_new, vt_dataset_shift_fn shift,
                            void *shift_ctx, vt_eval_row *row, vt_error *err) {
    const int T = (int)out->shape.seq_len, S = l->c.image_size;
    uint64_t index = out->sample_indices[b];
    Vt__Sample *s = NULL;
    vt_status st = read_sample(l, index, &s, err);
    if (st) return st;
    size_t nt = s->n_turns < 64 ? s->n_turns : 64, last = nt;
    while (last > 0 && s->turns[last - 1]->role != VT__ROLE__ROLE_ASSISTANT) last--;
    size_t prompt_turns = last > 0 ? last - 1 : nt; /* without an answer: the whole conversation */
    row->reference = dup_text(last > 0 ? s->turns[last - 1]->text : "");
    row->task = dup_text(s->task);
    row->question = prompt_turns > 0 ? dup_text(s->turns[prompt_turns - 1]->text) : dup_text("");
    if (!row->reference || !row->task || !row->question) st = vt_fail(err, VT_ERR_NOMEM, "dataset: out of memory");
    if (!st && shift) st = shift(shift_ctx, index, l->rgb, S, S, &row->question, err);
    if (!st) {
        normalise(l, 0, index, out->pixels + (size_t)b * 3 * S * S); /* no augmentation at evaluation */
        vt_chat_turn turns[64];
        to_turns(s, turns, prompt_turns);
        if (prompt_turns > 0) {
            turns[prompt_turns - 1].text = row->question;
            turns[prompt_turns - 1].len = strlen(row->question);
        }
        vt_chat_result res;
        st = vt_chat_encode(&l->tpl, l->tok, turns, prompt_turns, l->c.n_image_tokens, (size_t)T, true,
                            out->tokens + (size_t)b * T, l->mask, &res, err);
        if (!st && (res.truncated || res.length + (size_t)max_new > (size_t)T))
            st = vt_fail(err, VT_ERR_RANGE, "prompt of %zu%s tokens leaves no room for %d new tokens in seq_len %d",
                         res.length, res.truncated ? "+" : "", max_new, T);
        if (!st) out->lengths[b] = (int32_t)res.length;
    }
    if (st) vt_error_prefix(err, "%s: sample %012llu: ", vt_store_path(l->store), (unsigned long long)index);
    vt__sample__free_unpacked(s, NULL);
    return st;
}

vt_status vt_dataset_fill_prompts(vt_dataset *l, vt_batch *out, int max_new, vt_dataset_shift_fn shift,
                                 void *shift_ctx, vt_eval_row *rows, vt_error *err) {
    const int T = (int)out->shape.seq_len;
    if (T > l->c.seq_len || (int)out->shape.height != l->c.image_size)
        return vt_fail(err, VT_ERR_ARG, "dataset: prompt batch shape does not match the dataset");
    vt_status st = vt_store_txn_renew(l->txn, err);
    if (st) return st;
    memset(out->targets, 0, (size_t)out->shape.batch * T * sizeof *out->targets);
    memset(out->loss_mask, 0, (size_t)out->shape.batch * T);
    for (uint32_t b = 0; b < out->shape.batch && !st; b++)
        st = prompt_row(l, out, b, max_new, shift, shift_ctx, &rows[b], err);
    vt_store_txn_reset(l->txn);
    return st;
}
