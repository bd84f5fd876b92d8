/* The store writer: appends packed Samples to LMDB in batched transactions,
 * grows the map on MDB_MAP_FULL by doubling and replaying the pending batch
 * (the records of the open transaction are kept until it commits), and
 * publishes the finished directory with one rename. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "common/fs.h"
#include "common/sha256.h"
#include "common/version.h"
#include "pipeline/store.h"
#include "proto/schema.h"

enum { DEFAULT_COMMIT_EVERY = 1000 };
#define DEFAULT_MAP_SIZE (64ull << 20)
#define DEFAULT_MAX_MAP_SIZE (1ull << 40)

struct vt_store_writer {
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    uint64_t map_size, max_map_size;
    uint32_t commit_every;
    bool overwrite;
    char *source;
    /* Records of the open transaction, kept for replay after map growth. */
    uint8_t **pend;
    size_t *pend_len;
    uint32_t npend, pend_cap;
    uint64_t first_pending; /* index of pend[0] */
    uint64_t count, rejected;
    FILE *rejects;
    vt_sha256 hash;
    uint64_t record_bytes, image_bytes;
    uint64_t splits[4];
    cJSON *tasks, *groups, *extra;
};

void vt_store_key(uint64_t index, char key[VT_STORE_KEY_LEN + 1]) {
    snprintf(key, VT_STORE_KEY_LEN + 1, "%012llu", (unsigned long long)(index % 1000000000000ull));
}

static vt_status lmdb_fail(vt_error *err, int rc, const char *what, const char *path) {
    vt_status code = rc == ENOMEM ? VT_ERR_NOMEM : VT_ERR_IO;
    /* LMDB reports a short write as EIO: name the usual causes. */
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT || rc == EIO)
        return vt_fail(err, code, "%s: %s failed: %s (disk full, quota or file size limit?)", path,
                       what, mdb_strerror(rc));
    return vt_fail(err, code, "%s: %s failed: %s", path, what, mdb_strerror(rc));
}

static void strip_slashes(char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
}

vt_status vt_store_writer_open(const char *dir, const vt_store_writer_opts *opts,
                               vt_store_writer **out, vt_error *err) {
    *out = NULL;
    vt_store_writer_opts o = {0};
    if (opts) o = *opts;
    if (!dir || !*dir) return vt_fail(err, VT_ERR_ARG, "store: empty output path");
    if (strlen(dir) + 16 >= PATH_MAX) return vt_fail(err, VT_ERR_ARG, "%s: path too long", dir);
    vt_store_writer *w = calloc(1, sizeof *w);
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "store: out of memory");
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    strip_slashes(w->dir);
    w->map_size = o.map_size ? o.map_size : DEFAULT_MAP_SIZE;
    w->max_map_size = o.max_map_size ? o.max_map_size : DEFAULT_MAX_MAP_SIZE;
    if (w->map_size > w->max_map_size) w->map_size = w->max_map_size;
    w->commit_every = o.commit_every ? o.commit_every : DEFAULT_COMMIT_EVERY;
    w->overwrite = o.overwrite;
    w->source = strdup(o.source ? o.source : "unknown");
    w->tasks = cJSON_CreateObject();
    w->groups = cJSON_CreateObject();
    w->extra = cJSON_CreateObject();
    vt_sha256_init(&w->hash);
    vt_status st = VT_OK;
    if (!w->source || !w->tasks || !w->groups || !w->extra) {
        st = vt_fail(err, VT_ERR_NOMEM, "store: out of memory");
        goto fail;
    }
    if (vt_path_exists(w->dir) && !w->overwrite) {
        st = vt_fail(err, VT_ERR_STATE, "%s: already exists (remove it or pass --force)", w->dir);
        goto fail;
    }
    char parent[PATH_MAX];
    vt_dirname(w->dir, parent, sizeof parent);
    if (!vt_is_dir(parent)) {
        st = vt_fail(err, VT_ERR_IO, "%s: parent directory %s does not exist", w->dir, parent);
        goto fail;
    }
    if (access(parent, W_OK | X_OK) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot write to directory %s", w->dir, parent);
        goto fail;
    }
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.XXXXXX", w->dir);
    if (!mkdtemp(w->tmp)) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create temporary directory", w->dir);
        w->tmp[0] = '\0';
        goto fail;
    }
    chmod(w->tmp, 0755);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/rejects.jsonl", w->tmp);
    w->rejects = fopen(path, "w");
    if (!w->rejects) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create", path);
        goto fail;
    }
    int rc = mdb_env_create(&w->env);
    if (rc == 0) rc = mdb_env_set_mapsize(w->env, (size_t)w->map_size);
    /* NOSYNC while building: nothing is visible until finish(), which forces
     * a full sync before the rename. */
    if (rc == 0) rc = mdb_env_open(w->env, w->tmp, MDB_NOSYNC, 0644);
    if (rc != 0) {
        st = lmdb_fail(err, rc, "opening LMDB", w->tmp);
        goto fail;
    }
    rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    if (rc == 0) rc = mdb_dbi_open(w->txn, NULL, 0, &w->dbi);
    if (rc != 0) {
        st = lmdb_fail(err, rc, "starting a write transaction", w->tmp);
        goto fail;
    }
    *out = w;
    return VT_OK;
fail:
    vt_store_writer_abort(w);
    return st;
}

static void drop_pending(vt_store_writer *w) {
    for (uint32_t i = 0; i < w->npend; i++) free(w->pend[i]);
    w->first_pending += w->npend;
    w->npend = 0;
}

static int put_one(vt_store_writer *w, uint64_t index, const uint8_t *data, size_t len) {
    char key[VT_STORE_KEY_LEN + 1];
    vt_store_key(index, key);
    MDB_val k = {VT_STORE_KEY_LEN, key}, v = {len, (void *)data};
    return mdb_put(w->txn, w->dbi, &k, &v, MDB_APPEND);
}

/* The open transaction hit MDB_MAP_FULL: abort it, double the map and
 * replay every pending record; repeat until they fit or the cap is hit. */
static vt_status grow_and_replay(vt_store_writer *w, vt_error *err) {
    for (;;) {
        mdb_txn_abort(w->txn);
        w->txn = NULL;
        if (w->map_size >= w->max_map_size)
            return vt_fail(err, VT_ERR_RANGE,
                           "%s: LMDB map full at %llu bytes (the maximum map size); "
                           "raise --max-map-size",
                           w->dir, (unsigned long long)w->map_size);
        uint64_t next = w->map_size * 2;
        if (next > w->max_map_size) next = w->max_map_size;
        int rc = mdb_env_set_mapsize(w->env, (size_t)next);
        if (rc != 0) return lmdb_fail(err, rc, "growing the LMDB map", w->tmp);
        w->map_size = next;
        rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
        if (rc != 0) return lmdb_fail(err, rc, "starting a write transaction", w->tmp);
        uint32_t i = 0;
        for (; i < w->npend; i++) {
            rc = put_one(w, w->first_pending + i, w->pend[i], w->pend_len[i]);
            if (rc != 0) break;
        }
        if (rc == MDB_MAP_FULL) continue;
        if (rc != 0) return lmdb_fail(err, rc, "writing a record", w->tmp);
        return VT_OK;
    }
}

static vt_status commit(vt_store_writer *w, bool reopen, vt_error *err) {
    for (;;) {
        int rc = mdb_txn_commit(w->txn);
        w->txn = NULL;
        if (rc == MDB_MAP_FULL) {
            /* commit already freed the txn; grow_and_replay wants one to abort */
            rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
            if (rc != 0) return lmdb_fail(err, rc, "starting a write transaction", w->tmp);
            vt_status st = grow_and_replay(w, err);
            if (st != VT_OK) return st;
            continue;
        }
        if (rc != 0) return lmdb_fail(err, rc, "committing", w->tmp);
        break;
    }
    drop_pending(w);
    if (!reopen) return VT_OK;
    int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    if (rc != 0) return lmdb_fail(err, rc, "starting a write transaction", w->tmp);
    return VT_OK;
}

static void count_in(cJSON *obj, const char *key) {
    cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (n) cJSON_SetNumberValue(n, n->valuedouble + 1);
    else cJSON_AddNumberToObject(obj, key, 1);
}

vt_status vt_store_writer_put(vt_store_writer *w, Vt__Sample *s, uint64_t *index, vt_error *err) {
    if (!w->txn) return vt_fail(err, VT_ERR_STATE, "%s: writer is in a failed state", w->dir);
    uint64_t idx = w->count;
    s->schema_version = VT_SCHEMA_VERSION;
    s->index = idx;
    size_t len = vt__sample__get_packed_size(s);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "%s: cannot allocate a %zu-byte record", w->dir, len);
    vt__sample__pack(s, buf);
    if (w->npend == w->pend_cap) {
        uint32_t cap = w->pend_cap ? w->pend_cap * 2 : 64;
        uint8_t **p = realloc(w->pend, cap * sizeof *p);
        if (p) w->pend = p;
        size_t *l = p ? realloc(w->pend_len, cap * sizeof *l) : NULL;
        if (l) w->pend_len = l;
        if (!p || !l) {
            free(buf);
            return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", w->dir);
        }
        w->pend_cap = cap;
    }
    w->pend[w->npend] = buf;
    w->pend_len[w->npend] = len;
    w->npend++;
    int rc = put_one(w, idx, buf, len);
    vt_status st = VT_OK;
    if (rc == MDB_MAP_FULL) st = grow_and_replay(w, err);
    else if (rc != 0) st = lmdb_fail(err, rc, "writing a record", w->tmp);
    if (st != VT_OK) {
        if (w->txn) mdb_txn_abort(w->txn);
        w->txn = NULL;
        return st;
    }
    char key[VT_STORE_KEY_LEN + 1];
    vt_store_key(idx, key);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)len >> (8 * i));
    vt_sha256_update(&w->hash, key, VT_STORE_KEY_LEN);
    vt_sha256_update(&w->hash, le, 8);
    vt_sha256_update(&w->hash, buf, len);
    w->record_bytes += len;
    if (s->image) w->image_bytes += s->image->webp.len;
    w->splits[(unsigned)s->split < 4 ? (unsigned)s->split : 0]++;
    count_in(w->tasks, s->task && *s->task ? s->task : "(none)");
    char g[24];
    snprintf(g, sizeof g, "%u", s->group_id);
    count_in(w->groups, g);
    w->count++;
    if (index) *index = idx;
    if (w->npend >= w->commit_every) {
        st = commit(w, true, err);
        if (st != VT_OK) {
            if (w->txn) mdb_txn_abort(w->txn);
            w->txn = NULL;
        }
    }
    return st;
}

vt_status vt_store_writer_reject(vt_store_writer *w, uint64_t input_index, const char *id,
                                 const char *reason, const char *detail, vt_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", w->dir);
    cJSON_AddNumberToObject(o, "input_index", (double)input_index);
    if (id) cJSON_AddStringToObject(o, "id", id);
    else cJSON_AddNullToObject(o, "id");
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddStringToObject(o, "detail", detail ? detail : "");
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", w->dir);
    int ok = fprintf(w->rejects, "%s\n", line) > 0;
    cJSON_free(line);
    if (!ok) return vt_fail_errno(err, VT_ERR_IO, "%s/rejects.jsonl: write failed", w->tmp);
    w->rejected++;
    return VT_OK;
}

void vt_store_writer_manifest_add(vt_store_writer *w, const char *key, cJSON *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->extra, key);
    cJSON_AddItemToObject(w->extra, key, value);
}

uint64_t vt_store_writer_count(const vt_store_writer *w) { return w->count; }
uint64_t vt_store_writer_rejected(const vt_store_writer *w) { return w->rejected; }

static cJSON *build_manifest(vt_store_writer *w) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    unsigned char digest[32];
    char hex[65];
    vt_sha256_final(&w->hash, digest);
    vt_hex_encode(digest, 32, hex);
    cJSON_AddStringToObject(m, "format", "vistune-store");
    cJSON_AddNumberToObject(m, "schema_version", VT_SCHEMA_VERSION);
    cJSON_AddStringToObject(m, "vistune_version", VT_VERSION);
    cJSON_AddStringToObject(m, "source", w->source);
    cJSON_AddNumberToObject(m, "count", (double)w->count);
    cJSON_AddNumberToObject(m, "input_count", (double)(w->count + w->rejected));
    cJSON_AddNumberToObject(m, "rejected", (double)w->rejected);
    cJSON *sp = cJSON_AddObjectToObject(m, "splits");
    cJSON_AddNumberToObject(sp, "train", (double)w->splits[VT__SPLIT__SPLIT_TRAIN]);
    cJSON_AddNumberToObject(sp, "val", (double)w->splits[VT__SPLIT__SPLIT_VAL]);
    cJSON_AddNumberToObject(sp, "test", (double)w->splits[VT__SPLIT__SPLIT_TEST]);
    if (w->splits[0]) cJSON_AddNumberToObject(sp, "unspecified", (double)w->splits[0]);
    cJSON_AddItemToObject(m, "tasks", w->tasks);
    cJSON_AddItemToObject(m, "groups", w->groups);
    w->tasks = w->groups = NULL;
    cJSON_AddNumberToObject(m, "record_bytes", (double)w->record_bytes);
    cJSON_AddNumberToObject(m, "image_bytes", (double)w->image_bytes);
    cJSON_AddStringToObject(m, "content_sha256", hex);
    cJSON_AddNumberToObject(m, "map_size", (double)w->map_size);
    for (cJSON *e = w->extra->child; e;) {
        cJSON *next = e->next;
        cJSON_AddItemToObject(m, e->string, cJSON_DetachItemViaPointer(w->extra, e));
        e = next;
    }
    return m;
}

static vt_status finish(vt_store_writer *w, vt_error *err) {
    vt_status st = commit(w, false, err);
    if (st != VT_OK) return st;
    int rc = mdb_env_sync(w->env, 1);
    if (rc != 0) return lmdb_fail(err, rc, "syncing", w->tmp);
    mdb_env_close(w->env);
    w->env = NULL;
    if (fflush(w->rejects) != 0 || fsync(fileno(w->rejects)) != 0)
        return vt_fail_errno(err, VT_ERR_IO, "%s/rejects.jsonl: write failed", w->tmp);
    fclose(w->rejects);
    w->rejects = NULL;
    cJSON *m = build_manifest(w);
    char *text = m ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!text) return vt_fail(err, VT_ERR_NOMEM, "%s: cannot build manifest", w->dir);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/manifest.json", w->tmp);
    size_t n = strlen(text);
    text[n] = '\n'; /* overwrite the NUL: the file ends with a newline */
    st = vt_write_file_atomic(path, text, n + 1, err);
    cJSON_free(text);
    if (st != VT_OK) return st;
    snprintf(path, sizeof path, "%s/data.mdb", w->tmp);
    if ((st = vt_fsync_path(path, err)) != VT_OK) return st;
    if ((st = vt_fsync_dir(w->tmp, err)) != VT_OK) return st;

    char old[PATH_MAX + 32] = "";
    if (vt_path_exists(w->dir)) {
        if (!w->overwrite)
            return vt_fail(err, VT_ERR_STATE, "%s: appeared while writing; not replacing it", w->dir);
        snprintf(old, sizeof old, "%s.old.XXXXXX", w->dir);
        if (!mkdtemp(old)) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot make a name to move it aside", w->dir);
        if (rename(w->dir, old) != 0) {
            vt_fail_errno(err, VT_ERR_IO, "%s: cannot move the old store aside", w->dir);
            rmdir(old);
            return VT_ERR_IO;
        }
    }
    if (rename(w->tmp, w->dir) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot rename %s into place", w->dir, w->tmp);
        if (old[0]) rename(old, w->dir);
        return st;
    }
    w->tmp[0] = '\0'; /* published: nothing to clean up */
    char parent[PATH_MAX];
    vt_dirname(w->dir, parent, sizeof parent);
    st = vt_fsync_dir(parent, err);
    if (old[0]) vt_remove_tree(old, NULL);
    return st;
}

vt_status vt_store_writer_finish(vt_store_writer *w, vt_error *err) {
    vt_status st = w->txn ? finish(w, err)
                          : vt_fail(err, VT_ERR_STATE, "%s: writer is in a failed state", w->dir);
    vt_store_writer_abort(w); /* frees; removes tmp unless it was published */
    return st;
}

void vt_store_writer_abort(vt_store_writer *w) {
    if (!w) return;
    if (w->txn) mdb_txn_abort(w->txn);
    if (w->env) mdb_env_close(w->env);
    if (w->rejects) fclose(w->rejects);
    if (w->tmp[0]) vt_remove_tree(w->tmp, NULL);
    for (uint32_t i = 0; i < w->npend; i++) free(w->pend[i]);
    free(w->pend);
    free(w->pend_len);
    free(w->source);
    cJSON_Delete(w->tasks);
    cJSON_Delete(w->groups);
    cJSON_Delete(w->extra);
    free(w);
}
