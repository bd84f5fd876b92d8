/* Tokenizers: UTF-8 text <-> int32 token ids for the data loaders and the
 * evaluation code. One opaque handle covers three kinds of vocabulary:
 *   - GPT-2's encoder.json + vocab.bpe (byte-level BPE, GPT-2 split pattern);
 *   - a Hugging Face tokenizer.json with a BPE model: byte-level (GPT-2,
 *     Qwen/Llama-3 split patterns) or SentencePiece-style (Metaspace "▁",
 *     <0xNN> byte fallback), added/special tokens, merges as "a b" or [a, b];
 *   - a built-in byte-level tokenizer (ids 0..255 = bytes, then specials)
 *     for tests and runs that ship no vocabulary.
 * Added tokens are matched in the text before pre-tokenisation. A loaded
 * tokenizer is immutable apart from an internal, mutex-guarded word cache,
 * so one handle may be shared by loader threads. */
#ifndef VT_PIPELINE_TOKENIZER_H
#define VT_PIPELINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_tokenizer vt_tokenizer;

/* A growable id buffer; encode appends to it. Zero-initialise, free with
 * vt_tokens_free. */
typedef struct vt_tokens {
    int32_t *ids;
    size_t n, cap;
} vt_tokens;

void vt_tokens_free(vt_tokens *t);
vt_status vt_tokens_push(vt_tokens *t, int32_t id, vt_error *err);

/* Encode flags. */
enum {
    /* Match *special* added tokens (<|im_start|>, <|endoftext|>, ...) in the
     * text. Without it they are tokenised as plain text, which is what
     * dataset text needs (a caption cannot inject a control token).
     * Non-special added tokens are always matched, as in HF tokenizers. */
    VT_TOK_ALLOW_SPECIAL = 1u << 0,
    /* The text continues a sequence (a chat template's later segment): no
     * prefix is added at its start (Prepend "▁" normalizer, Metaspace
     * prepend, ByteLevel add_prefix_space), so encoding the pieces of a
     * text one after the other gives the ids of the whole text. */
    VT_TOK_CONTINUATION = 1u << 1,
};
/* Decode flags. */
enum {
    VT_TOK_SKIP_SPECIAL = 1u << 0, /* leave special tokens out of the text */
};

/* Built-in ids of vt_tokenizer_new_bytes(). */
enum {
    VT_BYTES_EOS = 256,       /* "<|endoftext|>" */
    VT_BYTES_PAD = 257,       /* "<|pad|>" */
    VT_BYTES_IMAGE = 258,     /* "<|image|>" */
    VT_BYTES_IM_START = 259,  /* "<|im_start|>" */
    VT_BYTES_IM_END = 260,    /* "<|im_end|>" */
    VT_BYTES_BOS = 261,       /* "<s>" */
    VT_BYTES_EOS_S = 262,     /* "</s>" */
    VT_BYTES_VOCAB = 263,
};

/* Loaders. On success *out owns everything; free with vt_tokenizer_free.
 * Errors name the file, and the key / line / byte offset where one applies. */
vt_status vt_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe, vt_tokenizer **out,
                                 vt_error *err);
vt_status vt_tokenizer_load_hf(const char *tokenizer_json, vt_tokenizer **out, vt_error *err);
vt_status vt_tokenizer_new_bytes(vt_tokenizer **out, vt_error *err);
/* One entry point for configs: "builtin:bytes", a tokenizer.json file, or a
 * directory holding tokenizer.json or encoder.json + vocab.bpe. */
vt_status vt_tokenizer_open(const char *spec, vt_tokenizer **out, vt_error *err);
void vt_tokenizer_free(vt_tokenizer *t);

/* Appends the ids of UTF-8 text[0..len) to out. VT_ERR_FORMAT (with the byte
 * offset) if the text is not well-formed UTF-8; out is unchanged on error. */
vt_status vt_tokenizer_encode(vt_tokenizer *t, const char *text, size_t len, unsigned flags, vt_tokens *out,
                              vt_error *err);
/* Decodes ids into *text (malloc'd, NUL-terminated, *len bytes). Byte-level
 * tokens can split a character, so a slice of ids may decode to bytes that
 * are not UTF-8 on their own; the whole sequence of an encode round-trips
 * exactly. VT_ERR_RANGE for an id outside the vocabulary. */
vt_status vt_tokenizer_decode(const vt_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **text,
                              size_t *len, vt_error *err);

/* The canonical form of text under this tokenizer: its Unicode
 * normalisation (NFC for Qwen) without the reversible rewrites (Metaspace,
 * Prepend/Replace of "▁") that decode undoes. For text without special
 * tokens, decode(encode(s)) == normalize(s). *out is malloc'd, NUL-terminated. */
vt_status vt_tokenizer_normalize(const vt_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len,
                                 vt_error *err);

/* Number of ids (max id + 1, added tokens included). */
int32_t vt_tokenizer_vocab_size(const vt_tokenizer *t);
/* Id of a token given by its text as it appears in the vocabulary file
 * (added tokens by content, e.g. "<|im_end|>"; byte-level tokens in their
 * raw byte form, e.g. " the"), or -1. */
int32_t vt_tokenizer_token_id(const vt_tokenizer *t, const char *token);
/* Raw bytes of one token (not NUL-terminated) or NULL for a bad id. */
const char *vt_tokenizer_token_bytes(const vt_tokenizer *t, int32_t id, size_t *len);
bool vt_tokenizer_is_special(const vt_tokenizer *t, int32_t id);
/* Adds a special token (e.g. "<image>") with the next free id, or returns
 * the existing id if the content is already a token. Not thread-safe: call
 * before sharing the handle. */
vt_status vt_tokenizer_add_special(vt_tokenizer *t, const char *content, int32_t *id, vt_error *err);
/* Well-known token ids (-1 when the vocabulary has none): end of sequence
 * ("</s>", "<|endoftext|>", "<|im_end|>"... by what the vocabulary holds),
 * beginning of sequence and padding. */
int32_t vt_tokenizer_eos_id(const vt_tokenizer *t);
int32_t vt_tokenizer_bos_id(const vt_tokenizer *t);
int32_t vt_tokenizer_pad_id(const vt_tokenizer *t);
/* "gpt2", "hf-bytelevel", "hf-sentencepiece" or "bytes". */
const char *vt_tokenizer_kind(const vt_tokenizer *t);

/* `vistune tokenize` (pipeline/tokenize_cmd.c). */
int vt_cmd_tokenize(int argc, char **argv);

#endif
