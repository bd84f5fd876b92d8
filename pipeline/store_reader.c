/* The store reader: LMDB opened read-only without thread-local reader slots,
 * stale slots of killed processes cleared at open, values handed out as
 * pointers into the map, and a protobuf wire walk that finds the WebP bytes
 * of a record without unpacking (protobuf-c copies every bytes field). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "common/fs.h"
#include "pipeline/store.h"
#include "proto/schema.h"

struct vt_store {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t count;
    cJSON *manifest;
    int stale;
    char path[PATH_MAX];
};

struct vt_store_txn {
    vt_store *s;
    MDB_txn *txn;
};

static vt_status open_env(vt_store *s, unsigned flags, int *rc_out) {
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxreaders(s->env, 512);
    if (rc == 0) rc = mdb_env_open(s->env, s->path, flags, 0644);
    if (rc != 0 && s->env) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    *rc_out = rc;
    return rc == 0 ? VT_OK : VT_ERR_IO;
}

vt_status vt_store_open(const char *dir, vt_store **out, vt_error *err) {
    *out = NULL;
    vt_store *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "store: out of memory");
    snprintf(s->path, sizeof s->path, "%s", dir);
    vt_status st;
    char mpath[PATH_MAX + 16];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", s->path);
    if (!vt_is_dir(s->path)) {
        st = vt_fail(err, VT_ERR_IO, "%s: no such store (not a directory)", s->path);
        goto fail;
    }
    char *text;
    size_t len;
    st = vt_read_file(mpath, 64u << 20, &text, &len, err);
    if (st != VT_OK) goto fail;
    s->manifest = cJSON_ParseWithLength(text, len);
    free(text);
    if (!s->manifest || !cJSON_IsObject(s->manifest)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: not a JSON object", mpath);
        goto fail;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s->manifest, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(s->manifest, "schema_version");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(s->manifest, "count");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "vistune-store") != 0) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: \"format\" is not \"vistune-store\"", mpath);
        goto fail;
    }
    if (!cJSON_IsNumber(ver) || ver->valuedouble < 1 || ver->valuedouble > VT_SCHEMA_VERSION) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: schema_version %g is not one this build reads (1..%u)",
                     mpath, cJSON_IsNumber(ver) ? ver->valuedouble : -1.0, VT_SCHEMA_VERSION);
        goto fail;
    }
    if (!cJSON_IsNumber(cnt) || cnt->valuedouble < 0) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: \"count\" is missing or negative", mpath);
        goto fail;
    }
    s->count = (uint64_t)cnt->valuedouble;

    int rc;
    if (open_env(s, MDB_RDONLY | MDB_NOTLS, &rc) != VT_OK) {
        /* A store on a read-only file system cannot open lock.mdb for
         * writing; it is never written again, so no lock is needed. */
        if (rc == EACCES || rc == EROFS || rc == EPERM || rc == ENOENT)
            open_env(s, MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK, &rc);
        if (rc != 0) {
            st = vt_fail(err, VT_ERR_IO, "%s: cannot open LMDB: %s", s->path, mdb_strerror(rc));
            goto fail;
        }
    }
    mdb_reader_check(s->env, &s->stale);
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
    MDB_stat ms;
    if (rc == 0) rc = mdb_stat(txn, s->dbi, &ms);
    if (rc != 0) {
        if (txn) mdb_txn_abort(txn);
        st = vt_fail(err, VT_ERR_IO, "%s: cannot read LMDB: %s", s->path, mdb_strerror(rc));
        goto fail;
    }
    mdb_txn_abort(txn);
    if ((uint64_t)ms.ms_entries != s->count) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: manifest says %llu records but LMDB holds %llu",
                     s->path, (unsigned long long)s->count, (unsigned long long)ms.ms_entries);
        goto fail;
    }
    *out = s;
    return VT_OK;
fail:
    vt_store_close(s);
    return st;
}

void vt_store_close(vt_store *s) {
    if (!s) return;
    if (s->env) mdb_env_close(s->env);
    cJSON_Delete(s->manifest);
    free(s);
}

uint64_t vt_store_count(const vt_store *s) { return s->count; }
const char *vt_store_path(const vt_store *s) { return s->path; }
const cJSON *vt_store_manifest(const vt_store *s) { return s->manifest; }
int vt_store_stale_readers_cleared(const vt_store *s) { return s->stale; }

vt_status vt_store_txn_begin(vt_store *s, vt_store_txn **out, vt_error *err) {
    *out = NULL;
    vt_store_txn *t = calloc(1, sizeof *t);
    if (!t) return vt_fail(err, VT_ERR_NOMEM, "store: out of memory");
    t->s = s;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (rc != 0) {
        free(t);
        return vt_fail(err, VT_ERR_IO, "%s: cannot begin a read transaction: %s", s->path,
                       mdb_strerror(rc));
    }
    *out = t;
    return VT_OK;
}

void vt_store_txn_reset(vt_store_txn *t) { mdb_txn_reset(t->txn); }

vt_status vt_store_txn_renew(vt_store_txn *t, vt_error *err) {
    int rc = mdb_txn_renew(t->txn);
    if (rc != 0)
        return vt_fail(err, VT_ERR_IO, "%s: cannot renew a read transaction: %s", t->s->path,
                       mdb_strerror(rc));
    return VT_OK;
}

void vt_store_txn_end(vt_store_txn *t) {
    if (!t) return;
    mdb_txn_abort(t->txn);
    free(t);
}

vt_status vt_store_get_raw(vt_store_txn *t, uint64_t index, const uint8_t **data, size_t *len,
                           vt_error *err) {
    *data = NULL;
    *len = 0;
    char key[VT_STORE_KEY_LEN + 1];
    vt_store_key(index, key);
    if (index >= t->s->count)
        return vt_fail(err, VT_ERR_RANGE, "%s: key %s: index %llu is out of range (%llu records)",
                       t->s->path, key, (unsigned long long)index,
                       (unsigned long long)t->s->count);
    MDB_val k = {VT_STORE_KEY_LEN, key}, v;
    int rc = mdb_get(t->txn, t->s->dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return vt_fail(err, VT_ERR_FORMAT, "%s: key %s: record missing", t->s->path, key);
    if (rc != 0)
        return vt_fail(err, VT_ERR_IO, "%s: key %s: read failed: %s", t->s->path, key,
                       mdb_strerror(rc));
    *data = v.mv_data;
    *len = v.mv_size;
    return VT_OK;
}

vt_status vt_store_get_sample(vt_store_txn *t, uint64_t index, ProtobufCAllocator *alloc,
                              Vt__Sample **out, vt_error *err) {
    *out = NULL;
    const uint8_t *data;
    size_t len;
    vt_status st = vt_store_get_raw(t, index, &data, &len, err);
    if (st != VT_OK) return st;
    char key[VT_STORE_KEY_LEN + 1];
    vt_store_key(index, key);
    Vt__Sample *s = vt__sample__unpack(alloc, len, data);
    if (!s)
        return vt_fail(err, VT_ERR_FORMAT, "%s: key %s: value (%zu bytes) is not a vt.Sample",
                       t->s->path, key, len);
    if (s->index != index || s->schema_version < 1 || s->schema_version > VT_SCHEMA_VERSION) {
        vt_fail(err, VT_ERR_FORMAT, "%s: key %s: record says index %llu, schema version %u",
                t->s->path, key, (unsigned long long)s->index, s->schema_version);
        vt__sample__free_unpacked(s, alloc);
        return VT_ERR_FORMAT;
    }
    *out = s;
    return VT_OK;
}

/* --- protobuf wire walk --- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return 0;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* Skips one field's payload; 0 on malformed input. */
static int skip_field(const uint8_t **p, const uint8_t *end, unsigned wire) {
    uint64_t n;
    switch (wire) {
    case 0: return read_varint(p, end, &n);
    case 1: if (end - *p < 8) return 0; *p += 8; return 1;
    case 5: if (end - *p < 4) return 0; *p += 4; return 1;
    case 2:
        if (!read_varint(p, end, &n) || n > (uint64_t)(end - *p)) return 0;
        *p += n;
        return 1;
    default: return 0;
    }
}

vt_status vt_sample_peek_image(const uint8_t *data, size_t len, vt_sample_image_ref *out,
                               vt_error *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *p = data, *end = data + len;
    const uint8_t *img = NULL, *img_end = NULL;
    while (p < end) {
        uint64_t tag;
        if (!read_varint(&p, end, &tag)) goto bad;
        unsigned field = (unsigned)(tag >> 3), wire = (unsigned)(tag & 7);
        if (field == 3 && wire == 2) {
            uint64_t n;
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) goto bad;
            img = p; /* the last occurrence wins, as in protobuf */
            img_end = p + n;
            p += n;
        } else if (!skip_field(&p, end, wire)) {
            goto bad;
        }
    }
    if (!img) return vt_fail(err, VT_ERR_FORMAT, "record has no image");
    for (p = img; p < img_end;) {
        uint64_t tag, v;
        if (!read_varint(&p, img_end, &tag)) goto bad;
        unsigned field = (unsigned)(tag >> 3), wire = (unsigned)(tag & 7);
        if (field == 1 && wire == 2) {
            if (!read_varint(&p, img_end, &v) || v > (uint64_t)(img_end - p)) goto bad;
            out->webp = p;
            out->webp_len = (size_t)v;
            p += v;
        } else if ((field == 2 || field == 3) && wire == 0) {
            if (!read_varint(&p, img_end, &v)) goto bad;
            if (field == 2) out->width = (uint32_t)v;
            else out->height = (uint32_t)v;
        } else if (!skip_field(&p, img_end, wire)) {
            goto bad;
        }
    }
    if (!out->webp) return vt_fail(err, VT_ERR_FORMAT, "record's image has no WebP bytes");
    return VT_OK;
bad:
    memset(out, 0, sizeof *out);
    return vt_fail(err, VT_ERR_FORMAT, "malformed vt.Sample record at byte %zu of %zu",
                   (size_t)(p - data), len);
}
