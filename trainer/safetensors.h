/* safetensors files: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the raw little-endian tensor bytes. The reader maps the file and
 * validates it strictly before handing out any tensor; the writer streams
 * tensors to a temporary file and renames it into place (atomic).
 *
 * Ownership: a vt_st_file owns its mapping; tensor names and data pointers it
 * returns stay valid until vt_st_close. A vt_st_writer does not copy tensor
 * data: the buffers passed to vt_st_writer_add must live until
 * vt_st_writer_write returns. */
#ifndef VT_TRAINER_SAFETENSORS_H
#define VT_TRAINER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef enum vt_st_dtype {
    VT_ST_F32,
    VT_ST_F16,
    VT_ST_BF16,
    VT_ST_F64,
    VT_ST_I64,
    VT_ST_I32,
    VT_ST_I16,
    VT_ST_I8,
    VT_ST_U8,
    VT_ST_BOOL,
} vt_st_dtype;

enum { VT_ST_MAX_DIMS = 8 };
/* Header lengths above this are rejected as corrupt (the reference
 * implementation uses the same 100 MB bound). */
#define VT_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct vt_st_tensor {
    const char *name;
    vt_st_dtype dtype;
    int ndim;
    int64_t shape[VT_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;   /* byte offsets inside the data section */
    const void *data;      /* points into the mapping: little-endian, maybe unaligned */
} vt_st_tensor;

typedef struct vt_st_file vt_st_file;

/* Size in bytes of one element; name as written in headers ("F32"). */
size_t vt_st_dtype_size(vt_st_dtype dt);
const char *vt_st_dtype_name(vt_st_dtype dt);

/* Maps and validates path. Errors name the file, the tensor and the byte
 * offset: header length sane, header valid JSON object, known dtypes,
 * shape*dtype size == end-begin, offsets inside the data section, tensors
 * neither overlapping nor leaving holes, no duplicate names,
 * __metadata__ a string->string map. */
vt_status vt_st_open(const char *path, vt_st_file **out, vt_error *err);
/* Same over a caller buffer (copied); name is used in messages. */
vt_status vt_st_parse(const void *buf, size_t len, const char *name, vt_st_file **out, vt_error *err);
void vt_st_close(vt_st_file *f);

int vt_st_count(const vt_st_file *f);
/* Tensors in data-offset order. */
const vt_st_tensor *vt_st_at(const vt_st_file *f, int i);
/* NULL when absent. */
const vt_st_tensor *vt_st_find(const vt_st_file *f, const char *name);
/* __metadata__ value or NULL. */
const char *vt_st_metadata(const vt_st_file *f, const char *key);
const char *vt_st_path(const vt_st_file *f);

/* Copies tensor t into dst as float32 (F32 as is; F16, BF16 and F64
 * converted). count must equal t->numel; other dtypes are VT_ERR_FORMAT. */
vt_status vt_st_read_f32(const vt_st_file *f, const vt_st_tensor *t, float *dst, int64_t count,
                         vt_error *err);

/* One tensor of a method module's flat float parameter buffer (Vittle's
 * layer, the ROSS denoiser, the M-Hub, the autoencoder). */
typedef struct vt_st_flat {
    const char *name;
    int ndim;
    const int64_t *shape;
    size_t offset, numel; /* in floats */
} vt_st_flat;

/* Reads exactly the n tensors t from f into params: a tensor the file has
 * and t lacks is "PATH: unexpected tensor 'N'" (+ " (extra_hint)" if not
 * NULL), a lacking one "PATH: tensor 'N' missing", another shape "PATH:
 * tensor 'N': shape differs from OWNER". */
vt_status vt_st_read_flat(const vt_st_file *f, const char *path, const vt_st_flat *t, int n, float *params,
                          const char *extra_hint, const char *owner, vt_error *err);

typedef struct vt_st_writer vt_st_writer;

vt_st_writer *vt_st_writer_new(void);
void vt_st_writer_free(vt_st_writer *w);
/* Adds a tensor (name copied, data NOT copied). Duplicate names, ndim out of
 * range or negative dims are VT_ERR_ARG. */
vt_status vt_st_writer_add(vt_st_writer *w, const char *name, vt_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, vt_error *err);
/* Adds a __metadata__ entry (both strings copied). */
vt_status vt_st_writer_meta(vt_st_writer *w, const char *key, const char *value, vt_error *err);
/* Writes path atomically (temp + fsync + rename + fsync dir). Tensors are
 * laid out in the order they were added; the header is space-padded so the
 * data section starts 8-byte aligned. */
vt_status vt_st_writer_write(vt_st_writer *w, const char *path, vt_error *err);

#endif
