/* Distribution-shift catalog for robustness evaluation: ImageNet-C image
 * corruptions at model resolution, instruction-text perturbations with
 * protected tokens, WordNet synonyms and joint image+text shifts, each at
 * severities 1..5 (research/shifts.md section 5; docs/shifts.md).
 *
 * Determinism: a shifted item is a pure function of (item id, shift,
 * severity, VT_SHIFT_CATALOG_VERSION). Callers derive the seed with
 * vt_shift_seed() and pass it to the apply functions; nothing reads global
 * random state. Any change to an algorithm or parameter table that changes an
 * output must bump VT_SHIFT_CATALOG_VERSION so cached shifted inputs and
 * nightly comparisons never mix two catalogs. */
#ifndef VT_PIPELINE_SHIFT_H
#define VT_PIPELINE_SHIFT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define VT_SHIFT_CATALOG_VERSION 1
enum { VT_SHIFT_SEVERITIES = 5 };
/* Images smaller than this on either side are refused (the blur kernels
 * and plasma fractal need some room); larger than VT_SHIFT_MAX_SIDE too. */
enum { VT_SHIFT_MIN_SIDE = 8, VT_SHIFT_MAX_SIDE = 8192 };
/* Instructions longer than this (bytes) are refused by the text shifts. */
enum { VT_SHIFT_MAX_TEXT = 1 << 20 };

typedef enum vt_shift_modality {
    VT_SHIFT_IMAGE = 1, /* changes only the image */
    VT_SHIFT_TEXT = 2,  /* changes only the instruction */
    VT_SHIFT_JOINT = 3, /* changes both (an image shift + a text shift at the same severity) */
} vt_shift_modality;

typedef struct vt_shift_env vt_shift_env;

/* Image kernel: works in place on float RGB in [0,1], interleaved, w*h*3;
 * the caller clips and quantises. rng is seeded for this item. */
struct vt_rng;
typedef vt_status (*vt_shift_image_fn)(float *rgb, int w, int h, int severity, struct vt_rng *rng,
                                       vt_error *err);
/* Text kernel: returns a malloc'd NUL-terminated result in *out. */
typedef vt_status (*vt_shift_text_fn)(const char *in, int severity, struct vt_rng *rng, vt_shift_env *env,
                                      char **out, vt_error *err);

/* One catalog entry. Read-only; entries live for the whole program. */
typedef struct vt_shift {
    const char *name;    /* "gaussian_noise", "keyboard", "joint_noise_keyboard" */
    const char *family;  /* "noise", "blur", "weather", "digital", "char", "word", "format", "sentence", "joint" */
    vt_shift_modality modality;
    const char *params;  /* severity parameters, e.g. "sigma=.08/.12/.18/.26/.38" */
    const char *note;    /* provenance: "ImageNet-C exact", "proposal", ... */
    vt_shift_image_fn image; /* NULL for text-only shifts */
    vt_shift_text_fn text;   /* NULL for image-only shifts */
} vt_shift;

/* The catalog in listing order. */
size_t vt_shift_count(void);
const vt_shift *vt_shift_at(size_t i);

/* Lookup by exact name. An unknown name fails with VT_ERR_ARG and a message
 * listing up to three close matches ("unknown shift 'gausian_noise' (did you
 * mean gaussian_noise, gaussian_blur?)"). */
vt_status vt_shift_find(const char *name, const vt_shift **out, vt_error *err);

/* seed = hash(item id, shift name, severity, catalog version). Item ids are
 * the sample index; vt_shift_item_key() turns a string id into one. */
uint64_t vt_shift_seed(uint64_t item, const vt_shift *shift, int severity);
uint64_t vt_shift_item_key(const char *item_id);

/* Resources some text shifts need (WordNet, for the synonym shifts). Open
 * once, share between threads; WordNet is loaded on first use, guarded by a
 * mutex. wordnet_dir NULL = $VT_WORDNET_DIR or /usr/share/wordnet. */
vt_status vt_shift_env_open(vt_shift_env **env, const char *wordnet_dir, vt_error *err);
void vt_shift_env_close(vt_shift_env *env);

/* Applies the image part of shift at severity (1..5) to an RGB8 image
 * (w*h*3 bytes, interleaved) into out (same size; may equal rgb). For a
 * text-only shift the image is copied unchanged, so an evaluator can call
 * both parts for every shift. Errors: severity out of range, image smaller
 * than VT_SHIFT_MIN_SIDE or larger than VT_SHIFT_MAX_SIDE, out of memory. */
vt_status vt_shift_apply_image(const vt_shift *shift, int severity, uint64_t seed, const uint8_t *rgb, int w,
                               int h, uint8_t *out, vt_error *err);

/* Applies the text part to a NUL-terminated UTF-8 instruction; *out is a new
 * malloc'd string the caller frees. Image-only shifts return a copy. Option
 * labels ("A.", "(B)", "C)"), numbers, quoted strings and <tags> such as
 * <image> are never altered. env may be NULL unless the shift needs WordNet
 * (then VT_ERR_ARG). */
vt_status vt_shift_apply_text(const vt_shift *shift, int severity, uint64_t seed, vt_shift_env *env,
                              const char *text, char **out, vt_error *err);

/* Shifts one evaluation item in place, in the shape of vt_dataset_shift_fn
 * (pipeline/dataset.h): ctx is a vt_shift_hook_ctx; the image (rgb, w*h*3,
 * skipped when NULL) is shifted in place and *question (malloc'd; skipped
 * when question or *question is NULL) is replaced by a new malloc'd string,
 * both seeded by vt_shift_seed(index, shift, severity). */
typedef struct vt_shift_hook_ctx {
    const vt_shift *shift;
    int severity;
    vt_shift_env *env; /* may be NULL unless the shift needs WordNet */
} vt_shift_hook_ctx;
vt_status vt_shift_hook(void *ctx, uint64_t index, uint8_t *rgb, int w, int h, char **question, vt_error *err);

/* `vistune shift` (pipeline/shift_cmd.c): --list, one shift on an image or
 * instruction, or a contact sheet. Returns the process exit status. */
int vt_cmd_shift(int argc, char **argv);

#endif
