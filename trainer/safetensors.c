/* safetensors reader (mmap + strict validation) and atomic streaming writer.
 * Validation happens once at open so every later accessor can trust offsets;
 * messages carry file, tensor name and byte offset for the CLI's one line. */
#include "trainer/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

struct vt_st_file {
    char *path;
    const unsigned char *base; /* whole file */
    size_t len;
    int mapped;                /* 1: munmap base; 0: free base */
    const unsigned char *data; /* data section */
    uint64_t data_len;
    int n;
    vt_st_tensor *t;
    char **names;
    int nmeta;
    char **meta_keys, **meta_vals;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [VT_ST_F32] = {"F32", 4}, [VT_ST_F16] = {"F16", 2}, [VT_ST_BF16] = {"BF16", 2},
    [VT_ST_F64] = {"F64", 8}, [VT_ST_I64] = {"I64", 8}, [VT_ST_I32] = {"I32", 4},
    [VT_ST_I16] = {"I16", 2}, [VT_ST_I8] = {"I8", 1},   [VT_ST_U8] = {"U8", 1},
    [VT_ST_BOOL] = {"BOOL", 1},
};
enum { NDTYPES = sizeof dtypes / sizeof dtypes[0] };

size_t vt_st_dtype_size(vt_st_dtype dt) { return (unsigned)dt < NDTYPES ? dtypes[dt].size : 0; }
const char *vt_st_dtype_name(vt_st_dtype dt) { return (unsigned)dt < NDTYPES ? dtypes[dt].name : "?"; }

static int dtype_from_name(const char *s) {
    for (int i = 0; i < NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

void vt_st_close(vt_st_file *f) {
    if (!f) return;
    if (f->base) {
        if (f->mapped)
            munmap((void *)f->base, f->len);
        else
            free((void *)f->base);
    }
    for (int i = 0; i < f->n; i++) free(f->names[i]);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->names);
    free(f->t);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->path);
    free(f);
}

static int cmp_begin(const void *a, const void *b) {
    const vt_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static vt_status parse_entry(vt_st_file *f, const cJSON *e, vt_st_tensor *t, vt_error *err) {
    const char *p = f->path, *nm = e->string;
    if (!cJSON_IsObject(e)) return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': entry is not an object", p, nm);
    for (const cJSON *k = e->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
            return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': unknown field '%s'", p, nm, k->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': missing string 'dtype'", p, nm);
    int d = dtype_from_name(dt->valuestring);
    if (d < 0) return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': unsupported dtype '%s'", p, nm, dt->valuestring);
    t->dtype = (vt_st_dtype)d;
    if (!cJSON_IsArray(sh)) return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': missing array 'shape'", p, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > VT_ST_MAX_DIMS)
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': %d dims exceeds the limit of %d", p, nm, nd, VT_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *s = sh->child; s; s = s->next, i++) {
        uint64_t v;
        if (!json_u64(s, &v) || v > (uint64_t)INT64_MAX)
            return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", p, nm, i);
        t->shape[i] = (int64_t)v;
        if (v && numel > UINT64_MAX / 16 / v)
            return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': shape overflows", p, nm);
        numel *= v;
    }
    t->numel = (int64_t)numel;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_u64(off->child, &t->begin) ||
        !json_u64(off->child->next, &t->end))
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end] integers", p, nm);
    if (t->end < t->begin)
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", p, nm,
                       (unsigned long long)t->end, (unsigned long long)t->begin);
    if (t->end > f->data_len)
        return vt_fail(err, VT_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets end %llu beyond the data section (%llu bytes, file offset %llu)",
                       p, nm, (unsigned long long)t->end, (unsigned long long)f->data_len,
                       (unsigned long long)(f->data - f->base));
    uint64_t want = numel * dtypes[d].size;
    if (t->end - t->begin != want)
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': %llu bytes at offset %llu but shape x %s needs %llu", p,
                       nm, (unsigned long long)(t->end - t->begin), (unsigned long long)t->begin,
                       dtypes[d].name, (unsigned long long)want);
    t->data = f->data + t->begin;
    return VT_OK;
}

static vt_status parse_meta(vt_st_file *f, const cJSON *m, vt_error *err) {
    if (!cJSON_IsObject(m)) return vt_fail(err, VT_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", f->path);
    for (const cJSON *k = m->child; k; k = k->next) {
        if (!cJSON_IsString(k))
            return vt_fail(err, VT_ERR_FORMAT, "%s: __metadata__ '%s' is not a string", f->path, k->string);
        f->meta_keys[f->nmeta] = strdup(k->string);
        f->meta_vals[f->nmeta] = strdup(k->valuestring);
        f->nmeta++;
        if (!f->meta_keys[f->nmeta - 1] || !f->meta_vals[f->nmeta - 1])
            return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", f->path);
    }
    return VT_OK;
}

static vt_status parse_header(vt_st_file *f, vt_error *err) {
    const char *p = f->path;
    if (f->len < 8) return vt_fail(err, VT_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", p, f->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen < 2 || hlen > VT_ST_MAX_HEADER)
        return vt_fail(err, VT_ERR_FORMAT, "%s: header length %llu at offset 0 is not sane (2..%llu)", p,
                       (unsigned long long)hlen, (unsigned long long)VT_ST_MAX_HEADER);
    if (hlen > f->len - 8)
        return vt_fail(err, VT_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", p,
                       (unsigned long long)hlen, f->len);
    const char *h = (const char *)f->base + 8;
    if (h[0] != '{') return vt_fail(err, VT_ERR_FORMAT, "%s: header at offset 8 does not start with '{'", p);
    f->data = f->base + 8 + hlen;
    f->data_len = f->len - 8 - hlen;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &endp, 0);
    if (!root) {
        size_t at = endp ? (size_t)(endp - h) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= h && ep < h + hlen) at = (size_t)(ep - h);
        return vt_fail(err, VT_ERR_FORMAT, "%s: header JSON invalid near byte %zu", p, 8 + at);
    }
    /* Only trailing spaces (the writers' alignment padding) may follow. */
    for (const char *q = endp; q && q < h + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\0') {
            cJSON_Delete(root);
            return vt_fail(err, VT_ERR_FORMAT, "%s: trailing bytes after the header JSON at offset %zu", p,
                           (size_t)(8 + (q - h)));
        }
    vt_status st = VT_OK;
    if (!cJSON_IsObject(root)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: header is not a JSON object", p);
        goto out;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    f->t = calloc((size_t)n + 1, sizeof *f->t);
    f->names = calloc((size_t)n + 1, sizeof(char *));
    if (!f->t || !f->names) {
        st = vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", p);
        goto out;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (f->meta_keys) {
                st = vt_fail(err, VT_ERR_FORMAT, "%s: duplicate __metadata__", p);
                goto out;
            }
            if ((st = parse_meta(f, e, err))) goto out;
            continue;
        }
        if (e->string[0] == '\0') {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor with an empty name", p);
            goto out;
        }
        vt_st_tensor *t = &f->t[f->n];
        f->names[f->n] = strdup(e->string);
        if (!f->names[f->n]) {
            st = vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", p);
            goto out;
        }
        t->name = f->names[f->n];
        f->n++;
        if ((st = parse_entry(f, e, t, err))) goto out;
    }
    /* Names are unique (cJSON keeps duplicate keys): sort a copy, compare neighbours. */
    {
        const char **nm = malloc(sizeof(char *) * ((size_t)f->n + 1));
        if (!nm) {
            st = vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", p);
            goto out;
        }
        for (int i = 0; i < f->n; i++) nm[i] = f->t[i].name;
        qsort(nm, (size_t)f->n, sizeof *nm, cmp_name);
        for (int i = 1; i < f->n; i++)
            if (!strcmp(nm[i - 1], nm[i])) {
                st = vt_fail(err, VT_ERR_FORMAT, "%s: duplicate tensor name '%s'", p, nm[i]);
                break;
            }
        free(nm);
        if (st) goto out;
    }
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        const vt_st_tensor *t = &f->t[i];
        if (t->begin < pos) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' at data offset %llu overlaps '%s' (ends at %llu)", p,
                         t->name, (unsigned long long)t->begin, f->t[i - 1].name, (unsigned long long)pos);
            goto out;
        }
        if (t->begin > pos) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: hole in the data section at offset %llu before tensor '%s'", p,
                         (unsigned long long)pos, t->name);
            goto out;
        }
        pos = t->end;
    }
    if (pos != f->data_len)
        st = vt_fail(err, VT_ERR_FORMAT, "%s: data section has %llu bytes but tensors cover %llu", p,
                     (unsigned long long)f->data_len, (unsigned long long)pos);
out:
    cJSON_Delete(root);
    return st;
}

static vt_status finish_open(vt_st_file *f, vt_st_file **out, vt_error *err) {
    vt_status st = parse_header(f, err);
    if (st) {
        vt_st_close(f);
        return st;
    }
    *out = f;
    return VT_OK;
}

vt_status vt_st_open(const char *path, vt_st_file **out, vt_error *err) {
    *out = NULL;
    vt_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vt_st_close(f);
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot open", path);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        vt_st_close(f);
        return vt_fail(err, VT_ERR_IO, "%s: not a regular file", path);
    }
    f->len = (size_t)sb.st_size;
    if (f->len == 0) {
        close(fd);
        vt_st_close(f);
        return vt_fail(err, VT_ERR_FORMAT, "%s: empty file, expected a safetensors header", path);
    }
    void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED) {
        errno = saved;
        vt_st_close(f);
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot map", path);
    }
    f->base = m;
    f->mapped = 1;
    return finish_open(f, out, err);
}

vt_status vt_st_parse(const void *buf, size_t len, const char *name, vt_st_file **out, vt_error *err) {
    *out = NULL;
    vt_st_file *f = calloc(1, sizeof *f);
    unsigned char *copy = malloc(len ? len : 1);
    if (!f || !copy || !(f->path = strdup(name))) {
        free(f);
        free(copy);
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", name);
    }
    if (len) memcpy(copy, buf, len);
    f->base = copy;
    f->len = len;
    return finish_open(f, out, err);
}

int vt_st_count(const vt_st_file *f) { return f->n; }
const vt_st_tensor *vt_st_at(const vt_st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }
const char *vt_st_path(const vt_st_file *f) { return f->path; }

const vt_st_tensor *vt_st_find(const vt_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *vt_st_metadata(const vt_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

/* IEEE half -> float, subnormals and inf/nan included. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

vt_status vt_st_read_f32(const vt_st_file *f, const vt_st_tensor *t, float *dst, int64_t count, vt_error *err) {
    if (count != t->numel)
        return vt_fail(err, VT_ERR_ARG, "%s: tensor '%s': caller expects %lld elements, file has %lld", f->path,
                       t->name, (long long)count, (long long)t->numel);
    const unsigned char *s = t->data;
    switch (t->dtype) {
    case VT_ST_F32:
        memcpy(dst, s, (size_t)count * 4); /* little-endian hosts only (x86, arm64) */
        return VT_OK;
    case VT_ST_F16:
        for (int64_t i = 0; i < count; i++) dst[i] = half_to_float((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return VT_OK;
    case VT_ST_BF16:
        for (int64_t i = 0; i < count; i++) {
            uint32_t bits = (uint32_t)(s[2 * i] | s[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return VT_OK;
    case VT_ST_F64:
        for (int64_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return VT_OK;
    default:
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': dtype %s is not a floating type", f->path, t->name,
                       vt_st_dtype_name(t->dtype));
    }
}

vt_status vt_st_read_flat(const vt_st_file *f, const char *path, const vt_st_flat *t, int n, float *params,
                          const char *extra_hint, const char *owner, vt_error *err) {
    for (int i = 0; i < vt_st_count(f); i++) {
        const char *name = vt_st_at(f, i)->name;
        bool known = false;
        for (int k = 0; k < n && !known; k++) known = !strcmp(t[k].name, name);
        if (!known)
            return vt_fail(err, VT_ERR_FORMAT, "%s: unexpected tensor '%s'%s%s%s", path, name,
                           extra_hint ? " (" : "", extra_hint ? extra_hint : "", extra_hint ? ")" : "");
    }
    for (int k = 0; k < n; k++) {
        const vt_st_tensor *s = vt_st_find(f, t[k].name);
        if (!s) return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' missing", path, t[k].name);
        bool same = s->ndim == t[k].ndim;
        for (int d = 0; same && d < t[k].ndim; d++) same = s->shape[d] == t[k].shape[d];
        if (!same)
            return vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': shape differs from %s", path, t[k].name, owner);
        vt_status st = vt_st_read_f32(f, s, params + t[k].offset, (int64_t)t[k].numel, err);
        if (st) return st;
    }
    return VT_OK;
}

/* ---- writer ---- */

typedef struct wtensor {
    char *name;
    vt_st_dtype dtype;
    int ndim;
    int64_t shape[VT_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
} wtensor;

struct vt_st_writer {
    wtensor *t;
    int n, cap;
    char **mk, **mv;
    int nm, mcap;
};

vt_st_writer *vt_st_writer_new(void) { return calloc(1, sizeof(vt_st_writer)); }

void vt_st_writer_free(vt_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

vt_status vt_st_writer_add(vt_st_writer *w, const char *name, vt_st_dtype dtype, int ndim, const int64_t *shape,
                           const void *data, vt_error *err) {
    if (!name || !name[0] || !strcmp(name, "__metadata__"))
        return vt_fail(err, VT_ERR_ARG, "safetensors writer: invalid tensor name '%s'", name ? name : "(null)");
    if ((unsigned)dtype >= NDTYPES) return vt_fail(err, VT_ERR_ARG, "safetensors writer: '%s': bad dtype", name);
    if (ndim < 0 || ndim > VT_ST_MAX_DIMS)
        return vt_fail(err, VT_ERR_ARG, "safetensors writer: '%s': %d dims out of range", name, ndim);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return vt_fail(err, VT_ERR_ARG, "safetensors writer: duplicate tensor name '%s'", name);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return vt_fail(err, VT_ERR_ARG, "safetensors writer: '%s': negative dim %d", name, i);
        numel *= (uint64_t)shape[i];
    }
    if (numel && !data) return vt_fail(err, VT_ERR_ARG, "safetensors writer: '%s': NULL data", name);
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 64;
        wtensor *nt = realloc(w->t, sizeof *nt * (size_t)nc);
        if (!nt) return vt_fail(err, VT_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return vt_fail(err, VT_ERR_NOMEM, "safetensors writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = numel * dtypes[dtype].size;
    t->data = data;
    w->n++;
    return VT_OK;
}

vt_status vt_st_writer_meta(vt_st_writer *w, const char *key, const char *value, vt_error *err) {
    if (w->nm == w->mcap) {
        int nc = w->mcap ? 2 * w->mcap : 8;
        char **a = realloc(w->mk, sizeof(char *) * (size_t)nc);
        if (!a) return vt_fail(err, VT_ERR_NOMEM, "safetensors writer: out of memory");
        w->mk = a;
        char **b = realloc(w->mv, sizeof(char *) * (size_t)nc);
        if (!b) return vt_fail(err, VT_ERR_NOMEM, "safetensors writer: out of memory");
        w->mv = b;
        w->mcap = nc;
    }
    w->mk[w->nm] = strdup(key);
    w->mv[w->nm] = strdup(value);
    w->nm++;
    if (!w->mk[w->nm - 1] || !w->mv[w->nm - 1]) return vt_fail(err, VT_ERR_NOMEM, "safetensors writer: out of memory");
    return VT_OK;
}

/* Growable string for the JSON header. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            sb_put(b, e, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static vt_status write_all(int fd, const void *data, uint64_t n, const char *path, vt_error *err) {
    const unsigned char *p = data;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = write(fd, p, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: write failed", path);
        p += r;
        n -= (uint64_t)r;
    }
    return VT_OK;
}

vt_status vt_st_writer_write(vt_st_writer *w, const char *path, vt_error *err) {
    sbuf b = {0};
    sb_str(&b, "{");
    if (w->nm) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) sb_str(&b, ",");
            sb_json_string(&b, w->mk[i]);
            sb_str(&b, ":");
            sb_json_string(&b, w->mv[i]);
        }
        sb_str(&b, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->nm) sb_str(&b, ",");
        sb_json_string(&b, t->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, dtypes[t->dtype].name);
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) sb_fmt(&b, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        sb_fmt(&b, "],\"data_offsets\":[%llu", off);
        off += t->nbytes;
        sb_fmt(&b, ",%llu]}", off);
    }
    sb_str(&b, "}");
    while (b.len % 8) sb_str(&b, " ");
    if (b.oom) {
        free(b.s);
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    char tmp[4096];
    int tn = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (tn < 0 || (size_t)tn >= sizeof tmp) {
        free(b.s);
        return vt_fail(err, VT_ERR_RANGE, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(b.s);
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot create", tmp);
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    vt_status st = write_all(fd, lenbuf, 8, tmp, err);
    if (!st) st = write_all(fd, b.s, b.len, tmp, err);
    for (int i = 0; !st && i < w->n; i++) st = write_all(fd, w->t[i].data, w->t[i].nbytes, tmp, err);
    free(b.s);
    if (!st && fsync(fd) != 0) st = vt_fail_errno(err, VT_ERR_IO, "%s: fsync failed", tmp);
    if (close(fd) != 0 && !st) st = vt_fail_errno(err, VT_ERR_IO, "%s: close failed", tmp);
    if (!st && rename(tmp, path) != 0) st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot rename into place", path);
    if (st) {
        unlink(tmp);
        return st;
    }
    char dir[4096];
    vt_dirname(path, dir, sizeof dir);
    return vt_fsync_dir(dir, err);
}
