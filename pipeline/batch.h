/* vt_batch: one micro-batch as the trainer consumes it -- the model's input
 * contract, shared by the loader (which fills it), the stream (which moves
 * it as raw frames) and the trainer (which reads it). All buffers live in one
 * slab, each view 64-byte aligned, so a batch is one allocation (or caller
 * memory such as a pinned staging slab) and travels as a few raw frames.
 *
 *   pixels    float32 [B, C, H, W]  CLIP-normalised image, one per sample
 *   tokens    int32   [B, T]        input ids; the image occupies its N
 *                                   image-token positions; right padded
 *   targets   int32   [B, T]        targets[t] = tokens[t+1]; pad_id past the end
 *   loss_mask uint8   [B, T]        1 where targets[t] is an assistant answer token
 *   lengths   int32   [B]           valid tokens per row (<= T)
 *   sample_indices uint64 [B]       dataset indices (from the sampler)
 */
#ifndef VT_BATCH_H
#define VT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_batch_shape {
    uint32_t batch;    /* B: samples in this micro-batch */
    uint32_t channels; /* C (3), 0 for text-only batches */
    uint32_t height, width;
    uint32_t seq_len;  /* T */
} vt_batch_shape;

typedef struct vt_batch {
    vt_batch_shape shape;
    /* Where the batch sits in the stream (set by the stream / loader). */
    uint64_t epoch, step;
    uint32_t micro_index, trainer_rank;
    uint64_t *sample_indices;
    float *pixels;
    int32_t *tokens;
    int32_t *targets;
    uint8_t *loss_mask;
    int32_t *lengths;
    void *slab;        /* the memory all views point into */
    size_t slab_bytes;
    int owns_slab;     /* vt_batch_free releases it */
} vt_batch;

/* The raw frames a batch travels as, in wire order (sample indices travel in
 * the header). The enum values match vt.DType in proto/stream.proto. */
enum { VT_BATCH_NFRAMES = 5 };
typedef enum vt_dtype { VT_DTYPE_F32 = 1, VT_DTYPE_I32 = 4, VT_DTYPE_U8 = 6 } vt_dtype;
typedef struct vt_batch_frame {
    const char *name; /* "pixels", "tokens", "targets", "loss_mask", "lengths" */
    vt_dtype dtype;
    uint32_t ndim;
    uint64_t dims[4];
    void *data;
    size_t nbytes;
} vt_batch_frame;

/* Bytes of the slab for a shape (all views, aligned); 0 when it overflows. */
size_t vt_batch_bytes(const vt_batch_shape *shape);
/* Allocates a zeroed slab (64-byte aligned) and sets the views. Rejects
 * B == 0, T == 0 and shapes whose size overflows. */
vt_status vt_batch_alloc(vt_batch *b, const vt_batch_shape *shape, vt_error *err);
/* Points the views into caller memory of at least vt_batch_bytes(shape)
 * bytes, 64-byte aligned (e.g. a pinned staging buffer). Does not own it. */
void vt_batch_view(vt_batch *b, const vt_batch_shape *shape, void *slab);
void vt_batch_free(vt_batch *b);
/* Describes the batch's frames in wire order. */
void vt_batch_frames(const vt_batch *b, vt_batch_frame out[VT_BATCH_NFRAMES]);
/* Points the views at separate buffers, one per frame in wire order (e.g.
 * received ZeroMQ messages; each aligned for its dtype). No slab, owns
 * nothing; sample_indices and the position are left unset. */
void vt_batch_view_frames(vt_batch *b, const vt_batch_shape *shape, void *const data[VT_BATCH_NFRAMES]);
/* Copies src's frames, sample indices and position into dst, whose shape
 * must equal src's. */
void vt_batch_copy(vt_batch *dst, const vt_batch *src);
/* 1 when the per-sample parts (C, H, W, T) agree; B may differ. */
int vt_batch_shape_compatible(const vt_batch_shape *a, const vt_batch_shape *b);

/* Something that fills a batch for given samples: the real loader (LMDB +
 * decode + tokenize) or the synthetic source. fill() receives a batch whose
 * shape, epoch, step and sample_indices are set and writes every other view.
 * It must be a pure function of (epoch, sample indices) and its own config:
 * that is what lets any loader answer any request (DESIGN §2). */
typedef struct vt_batch_source {
    vt_status (*fill)(void *ctx, vt_batch *out, vt_error *err);
    void *ctx;
    vt_batch_shape sample_shape; /* C, H, W, T of this source; batch unused */
} vt_batch_source;

#endif
