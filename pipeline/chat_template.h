/* Chat templates: a sample's conversation turns -> token ids + a per-token
 * loss mask for supervised fine-tuning (DESIGN §3 "Sequence").
 *   plain      LLaVA stage 1: [bos] <image>*N caption eos
 *   vicuna_v1  LLaVA-1.5 (conversation.py conv_vicuna_v1, sep " ", sep2 "</s>"):
 *              [bos] "{system} USER: <image>\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>"
 *   chatml     "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n
 *               <|im_start|>assistant\n{a}<|im_end|>\n"
 * The mask is 1 only on assistant answer tokens and the end-of-turn token
 * that closes each answer ("</s>" / eos / "<|im_end|>"); system, user,
 * role markup and image positions are 0. The "<image>" placeholder of the
 * first user turn becomes N copies of the image token id. Dataset text is
 * tokenised without special-token matching, so a caption cannot inject
 * control tokens; markup tokens are inserted as ids. */
#ifndef VT_PIPELINE_CHAT_TEMPLATE_H
#define VT_PIPELINE_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/tokenizer.h"
#include "proto/sample.pb-c.h"

typedef enum vt_chat_format { VT_CHAT_PLAIN, VT_CHAT_VICUNA_V1, VT_CHAT_CHATML } vt_chat_format;

/* Same numbers as vt.Role in proto/sample.proto, so Vt__Role casts directly. */
enum { VT_CHAT_SYSTEM = 1, VT_CHAT_USER = 2, VT_CHAT_ASSISTANT = 3 };

typedef struct vt_chat_turn {
    int role;         /* VT_CHAT_SYSTEM / USER / ASSISTANT */
    const char *text; /* UTF-8, len bytes (not necessarily NUL-terminated) */
    size_t len;
} vt_chat_turn;

typedef struct vt_chat_template {
    vt_chat_format format;
    const char *system;   /* system prompt (owned by the template); "" = none */
    int32_t bos;          /* prepended when >= 0 */
    int32_t end_of_turn;  /* closes each answer: "</s>"/eos, or "<|im_end|>" */
    int32_t im_start;     /* chatml only */
    int32_t image_token;  /* the id the "<image>" placeholder expands to */
    int32_t pad;
    char *owned_system;
} vt_chat_template;

/* LLaVA's conv_vicuna_v1 system prompt and the usual ChatML default. */
extern const char vt_chat_vicuna_system[];
extern const char vt_chat_chatml_system[];

/* Fills tpl for a format name ("plain", "vicuna_v1", "chatml") and a
 * tokenizer: end of turn = "</s>" if the vocabulary has it, else its eos
 * (chatml: "<|im_end|>"); image token = "<image>", "<|image_pad|>" or
 * "<|image|>", whichever exists first; bos = the tokenizer's bos for plain
 * and vicuna_v1 (none for chatml); pad = the tokenizer's pad. Markup tokens
 * the vocabulary lacks ("<image>", chatml's pair) are added to the tokenizer
 * as specials, so size embeddings by vt_tokenizer_vocab_size() afterwards.
 * system: NULL = the format's default; "" = no system prompt. */
vt_status vt_chat_template_init(vt_chat_template *tpl, const char *name, const char *system, vt_tokenizer *tok,
                                vt_error *err);
void vt_chat_template_free(vt_chat_template *tpl);

typedef struct vt_chat_result {
    size_t length;        /* tokens before padding (<= max_len) */
    int32_t image_start;  /* first image position, -1 when no image */
    int32_t image_len;
    int answers;          /* answers (assistant turns) in the sample */
    int answers_cut;      /* answers shortened by truncation */
    int answers_dropped;  /* answers removed entirely by truncation */
    size_t loss_tokens;   /* positions with mask 1 (0: nothing to learn) */
    bool truncated;
} vt_chat_result;

/* Builds the sequence into ids[0..max_len) and mask[0..max_len). Longer
 * sequences are cut at max_len (from the end; never inside the image span:
 * VT_ERR_RANGE if the span does not fit); with pad, positions from length
 * to max_len hold tpl->pad with mask 0. n_image_tokens = 0 means a
 * text-only sample. A trailing user turn leaves the prompt open for
 * generation ("... ASSISTANT:" / "<|im_start|>assistant\n").
 * VT_ERR_FORMAT (naming the turn) for: no turns, a placeholder outside the
 * first user turn or repeated, a placeholder without an image, roles out of
 * order (user and assistant must alternate, system only first), plain
 * without an assistant turn, or invalid UTF-8. */
vt_status vt_chat_encode(const vt_chat_template *tpl, vt_tokenizer *tok, const vt_chat_turn *turns, size_t n_turns,
                         int32_t n_image_tokens, size_t max_len, bool pad, int32_t *ids, uint8_t *mask,
                         vt_chat_result *res, vt_error *err);

/* vt_chat_encode over a stored Sample's turns (roles checked: an
 * unspecified role is VT_ERR_FORMAT naming the sample index and turn).
 * n_image_tokens as above (0 when the sample carries no image). */
vt_status vt_chat_encode_sample(const vt_chat_template *tpl, vt_tokenizer *tok, const Vt__Sample *sample,
                                int32_t n_image_tokens, size_t max_len, bool pad, int32_t *ids, uint8_t *mask,
                                vt_chat_result *res, vt_error *err);

#endif
