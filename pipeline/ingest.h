/* Ingest: LLaVA JSON + JPEG/PNG/WebP images -> resized WebP -> vt.Sample
 * records in a new store (pipeline/store.h). Decode/resize/encode run on a
 * thread pool; records are written in input order, so the output is the same
 * for any thread count. Every input becomes a record or a line of
 * rejects.jsonl (accepted + rejected = input, stated in the manifest).
 *
 * Entry format (extra keys are ignored):
 *   {"id": "abc", "image": "relative/path.jpg",
 *    "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
 *    "task": "color", "group": 3, "split": "train",
 *    "license": "CC0", "source": "coco"}   (license/source: provenance of this entry)
 * `from` is human|user, gpt|assistant or system. Exactly one "<image>" must
 * appear, in the first human turn. Without "split", an entry goes to val
 * when hash(seed, id) < val_fraction. */
#ifndef VT_PIPELINE_INGEST_H
#define VT_PIPELINE_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/image.h"

typedef struct vt_ingest_opts {
    const char *json_path;   /* LLaVA JSON file */
    const char *images_dir;  /* image paths are relative to this */
    const char *out_dir;     /* the store to create */
    int size;                /* output side in pixels; 0 keeps the source size */
    vt_fit_mode fit;         /* pad (LLaVA) or crop (CLIP) */
    int quality;             /* WebP quality 0..100 (lossless: effort) */
    bool lossless;
    int threads;             /* decode/encode workers; 0 = online CPUs */
    double val_fraction;     /* 0..1 */
    uint64_t seed;           /* for the split hash */
    uint64_t max_pixels;     /* decompression-bomb limit; 0 = default */
    uint64_t map_size, max_map_size; /* LMDB map: initial and cap (0 = defaults) */
    uint32_t commit_every;   /* 0 = 1000 */
    const char *source;      /* manifest/provenance source; NULL = "llava-json" */
    const char *license;     /* provenance license; NULL = "" */
    bool strict;             /* any reject fails the whole ingest */
    bool force;              /* replace an existing store */
} vt_ingest_opts;

/* Defaults: size 336, pad, quality 90 lossy, threads 0, val 0, seed 0. */
vt_ingest_opts vt_ingest_opts_default(void);

typedef struct vt_ingest_stats {
    uint64_t input, accepted, rejected;
    uint64_t image_bytes;
    double seconds;
} vt_ingest_stats;

/* Runs the ingest. Errors (malformed JSON with line/column, unwritable
 * output, a full map at max_map_size, a full disk, a reject under strict)
 * leave no store behind. */
vt_status vt_ingest_run(const vt_ingest_opts *opts, vt_ingest_stats *stats, vt_error *err);

/* The first invalid byte of s (strict UTF-8: no overlongs, surrogates or
 * values above U+10FFFF), or -1 when s is valid. */
long vt_utf8_invalid_at(const char *s, size_t len);

/* `vistune ingest --json FILE --images DIR --out DB [options]` */
int vt_cmd_ingest(int argc, char **argv);

#endif
