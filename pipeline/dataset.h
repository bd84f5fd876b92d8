/* The dataset as the model sees it: turns stored samples into model-ready rows (DESIGN §2).
 * For each sample index: the WebP image is read from the LMDB map without a
 * copy and decoded into a per-handle RGB buffer, resized if the store's size
 * differs from the model's, augmented with randomness seeded by
 * hash(seed, epoch, index) (never by which loader runs it), CLIP-normalised
 * into the batch as float [3,H,W]; the conversation goes through the chat
 * template: tokens with the image span expanded, targets = next token, and
 * the answer-only loss mask. Training rows come through vt_dataset_source()
 * (the vt_batch_source the sampler/stream fill batches with); evaluation rows
 * (the prompt up to the last answer, left open for generation, plus the
 * reference answer) through vt_dataset_fill_prompts(), where a shift hook may
 * change each row's image and question first.
 *
 * Run-config keys (section `data`): store (path), tokenizer ("builtin:bytes",
 * a tokenizer.json, or a directory with encoder.json + vocab.bpe; default
 * builtin:bytes), template (plain | vicuna_v1 | chatml; default vicuna_v1),
 * system_prompt (default: the template's), augment.jitter (brightness and
 * contrast factor range ±jitter; default 0 = no augmentation). */
#ifndef VT_PIPELINE_DATASET_H
#define VT_PIPELINE_DATASET_H

#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "pipeline/batch.h"
#include "pipeline/chat_template.h"
#include "pipeline/tokenizer.h"

typedef struct vt_dataset_config {
    const char *store;
    const char *tokenizer;
    const char *template_name;
    const char *system;      /* NULL = the template's default */
    double jitter;
    /* From the model and the run: */
    int image_size;          /* H = W */
    int n_image_tokens;      /* N image positions per sequence */
    int seq_len;             /* T */
    uint64_t seed;
} vt_dataset_config;

void vt_dataset_config_default(vt_dataset_config *c);
/* Reads data.{store,tokenizer,template,system_prompt,augment.jitter}; the
 * strings stay owned by cfg. */
vt_status vt_dataset_config_read(const vt_config *cfg, vt_dataset_config *c, vt_error *err);

typedef struct vt_dataset vt_dataset;

vt_status vt_dataset_open(const vt_dataset_config *c, vt_dataset **out, vt_error *err);
void vt_dataset_close(vt_dataset *l);

uint64_t vt_dataset_count(const vt_dataset *l);
vt_tokenizer *vt_dataset_tokenizer(vt_dataset *l);
const vt_chat_template *vt_dataset_template(const vt_dataset *l);
/* Vocabulary size after the template added its markup tokens: the model's
 * vocab_size must be at least this, and its image_token_index must equal
 * vt_dataset_template(l)->image_token. */
int32_t vt_dataset_vocab_size(const vt_dataset *l);
/* A vt_batch_source for training rows (sample shape C=3, H=W=image_size, T). */
vt_batch_source vt_dataset_source(vt_dataset *l);
/* The store's split of each sample, for held-out selection (vt.Split values). */
vt_status vt_dataset_split(vt_dataset *l, uint64_t index, int *split, vt_error *err);
/* The sample's task group (vt.Sample.group_id; MMICT's demonstrations come from the same group). */
vt_status vt_dataset_group(vt_dataset *l, uint64_t index, uint32_t *group, vt_error *err);

/* One evaluation row's text, owned by the caller (free with vt_eval_row_free). */
typedef struct vt_eval_row {
    char *question;   /* the last user turn as asked (after any shift) */
    char *reference;  /* the last assistant turn */
    char *task;       /* the sample's question type */
} vt_eval_row;
void vt_eval_row_free(vt_eval_row *r);

/* Called per row before normalisation and tokenisation: may change the RGB8
 * image in place (w*h*3) and replace *question (malloc'd; free the old one). */
typedef vt_status (*vt_dataset_shift_fn)(void *ctx, uint64_t index, uint8_t *rgb, int w, int h,
                                        char **question, vt_error *err);

/* Fills prompt rows for batch->sample_indices: pixels, tokens (the
 * conversation up to the last answer, left open), lengths = prompt lengths;
 * targets/loss_mask zero. Each prompt must leave max_new free positions in T
 * (VT_ERR_RANGE naming the sample otherwise). rows[b] gets the texts. */
vt_status vt_dataset_fill_prompts(vt_dataset *l, vt_batch *out, int max_new, vt_dataset_shift_fn shift,
                                 void *shift_ctx, vt_eval_row *rows, vt_error *err);

#endif
