/* Internals shared by the tokenizer files (core, split patterns, BPE,
 * loaders). Not a public header: only pipeline/tokenizer*.c include it. */
#ifndef VT_PIPELINE_TOKENIZER_INTERNAL_H
#define VT_PIPELINE_TOKENIZER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/tokenizer.h"

/* Pre-tokenisation split patterns implemented by hand (no regex engine). */
typedef enum vt_split_kind {
    VT_SPLIT_NONE = 0,  /* the whole segment is one word */
    VT_SPLIT_GPT2,      /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    VT_SPLIT_QWEN,      /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
} vt_split_kind;

typedef struct vt_added_token {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word;
} vt_added_token;

typedef struct vt_norm_op {
    enum { VT_NORM_NFC, VT_NORM_PREPEND, VT_NORM_REPLACE } kind;
    char *a, *b; /* PREPEND: a; REPLACE: a -> b */
    size_t alen, blen;
} vt_norm_op;

/* Open-addressing map from token spelling to id; slots hold id+1. */
typedef struct vt_strmap {
    uint32_t *slots;
    size_t mask;
} vt_strmap;

typedef struct vt_pair_entry {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} vt_pair_entry;

typedef struct vt_pairmap {
    vt_pair_entry *slots;
    size_t mask, count;
} vt_pairmap;

typedef struct vt_word_cache vt_word_cache;

struct vt_tokenizer {
    const char *kind;
    int32_t n_vocab;      /* ids are 0..n_vocab-1; holes have tok == NULL */
    size_t cap_vocab;
    char **tok;           /* spelling in the vocabulary (raw bytes for byte-level) */
    uint32_t *tok_len;
    char **dec;           /* bytes a token decodes to (may alias tok) */
    uint32_t *dec_len;
    uint8_t *special;     /* 1 = special added token */
    vt_strmap vocab;
    vt_pairmap merges;

    /* model */
    bool byte_level;      /* words start as single bytes (byte_id) */
    int32_t byte_id[256]; /* byte-level symbol, or <0xNN> fallback token; -1 none */
    bool byte_fallback;
    int32_t unk_id;
    bool fuse_unk;
    bool ignore_merges;   /* a word that is itself in the vocabulary is not split */

    /* normalizer, pre-tokenizer, decoder */
    vt_norm_op *norm;
    size_t n_norm;
    vt_split_kind split;
    int max_digits;       /* VT_SPLIT_QWEN: \p{N}{1,max_digits} */
    bool add_prefix_space;/* ByteLevel: prepend ' ' when the text does not start with one */
    bool metaspace;       /* ' ' -> "▁" then split before each "▁" */
    bool metaspace_split;
    int metaspace_prepend;/* 0 never, 1 first segment, 2 always */
    int decode_strip;     /* leading spaces removed from decoded text */

    vt_added_token *added;
    size_t n_added;
    uint8_t added_first[256]; /* first bytes of added tokens */

    int32_t eos, bos, pad;
    vt_word_cache *cache;
    pthread_mutex_t cache_mu;
};

/* Core (tokenizer.c). */
vt_tokenizer *vt_tok_alloc(const char *kind);
/* Sets the spelling of id (grows the tables); dec = spelling unless set later. */
vt_status vt_tok_set(vt_tokenizer *t, int32_t id, const char *s, size_t len, vt_error *err);
vt_status vt_tok_set_decoded(vt_tokenizer *t, int32_t id, const char *s, size_t len, vt_error *err);
/* Builds the spelling -> id map once all tokens are set. */
vt_status vt_tok_index(vt_tokenizer *t, vt_error *err);
int32_t vt_tok_lookup(const vt_tokenizer *t, const char *s, size_t len);
vt_status vt_tok_add_added(vt_tokenizer *t, const char *content, size_t len, int32_t id, bool special,
                           bool lstrip, bool rstrip, bool single_word, vt_error *err);
vt_status vt_tok_add_merge(vt_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged,
                           vt_error *err);
/* Picks eos/bos/pad from well-known spellings where the loader set none. */
void vt_tok_default_roles(vt_tokenizer *t);
/* Finishes loading: cache, byte ids for byte-level models. */
vt_status vt_tok_finish(vt_tokenizer *t, vt_error *err);

/* GPT-2's reversible byte <-> printable code point mapping (bytes_to_unicode). */
uint32_t vt_tok_byte_to_cp(unsigned char b);
/* Inverse: -1 for a code point outside the mapping. */
int vt_tok_cp_to_byte(uint32_t cp);

/* Converts a byte-level spelling ("Ġthe", UTF-8) to raw bytes (" the") into
 * out (room for n bytes). Returns the length, or -1 for a character outside
 * the mapping. */
long vt_tok_unmap_bytelevel(const char *s, size_t n, char *out);

/* Split patterns (tokenizer_split.c): calls emit(ctx, offset, len) for each
 * word of s[0..n) (well-formed UTF-8) in order; the words cover s. */
typedef vt_status (*vt_word_fn)(void *ctx, size_t off, size_t len, vt_error *err);
vt_status vt_tok_split(const vt_tokenizer *t, const char *s, size_t n, vt_word_fn emit, void *ctx,
                       vt_error *err);

/* BPE (tokenizer_bpe.c): appends the ids of one word. */
vt_status vt_tok_bpe_word(vt_tokenizer *t, const char *w, size_t n, vt_tokens *out, vt_error *err);
vt_word_cache *vt_word_cache_new(void);
void vt_word_cache_free(vt_word_cache *c);

#endif
