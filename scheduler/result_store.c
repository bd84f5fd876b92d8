/* LMDB-backed result store (see result_store.h). One environment, the
 * unnamed database, keys = task ids, values = packed vt.EvalResult. */
#include "scheduler/result_store.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "proto/schema.h"

struct vt_result_store {
    MDB_env *env;
    MDB_dbi dbi;
    char *dir;
    bool writable;
};

static vt_status lmdb_fail(vt_error *err, const char *dir, const char *what, int rc) {
    return vt_fail(err, rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH
                            ? VT_ERR_FORMAT
                            : VT_ERR_IO,
                   "%s: result store %s: %s", dir, what, mdb_strerror(rc));
}

vt_status vt_result_store_open(const char *dir, bool writable, vt_result_store **out, vt_error *err) {
    *out = NULL;
    if (!vt_is_dir(dir)) {
        if (!writable) return vt_fail(err, VT_ERR_IO, "%s: no result store here", dir);
        vt_status st = vt_mkdir_p(dir, err);
        if (st) return st;
    }
    vt_result_store *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", dir);
    }
    s->writable = writable;
    int rc = mdb_env_create(&s->env);
    if (!rc) rc = mdb_env_set_mapsize(s->env, (size_t)64 << 20);
    if (!rc) rc = mdb_env_open(s->env, dir, writable ? 0 : MDB_RDONLY, 0644);
    if (rc) {
        vt_status st = lmdb_fail(err, dir, "cannot open", rc);
        vt_result_store_close(s);
        return st;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* clear slots of crashed readers */
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, writable ? 0 : MDB_RDONLY, &txn);
    if (!rc) rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
    if (!rc) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        vt_status st = lmdb_fail(err, dir, "cannot open the database", rc);
        vt_result_store_close(s);
        return st;
    }
    *out = s;
    return VT_OK;
}

void vt_result_store_close(vt_result_store *s) {
    if (!s) return;
    if (s->env) mdb_env_close(s->env);
    free(s->dir);
    free(s);
}

static vt_status grow(vt_result_store *s, vt_error *err) {
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    int rc = mdb_env_set_mapsize(s->env, info.me_mapsize * 2);
    return rc ? lmdb_fail(err, s->dir, "cannot grow the map", rc) : VT_OK;
}

vt_status vt_result_store_put(vt_result_store *s, const Vt__EvalResult *r, bool *stored, vt_error *err) {
    *stored = false;
    if (!s->writable) return vt_fail(err, VT_ERR_STATE, "%s: result store is read-only", s->dir);
    if (!r->task || !r->task->task_id || !r->task->task_id[0])
        return vt_fail(err, VT_ERR_ARG, "%s: result has no task id", s->dir);
    const char *id = r->task->task_id;
    size_t n = vt__eval_result__get_packed_size(r);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "%s: cannot pack result %s", s->dir, id);
    vt__eval_result__pack(r, buf);
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc) {
            free(buf);
            return lmdb_fail(err, s->dir, "cannot begin a write", rc);
        }
        MDB_val key = {strlen(id), (void *)id}, val = {n, buf};
        rc = mdb_put(txn, s->dbi, &key, &val, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            mdb_txn_abort(txn);
            free(buf);
            return VT_OK;
        }
        if (!rc) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
        if (rc == MDB_MAP_FULL) {
            vt_status st = grow(s, err);
            if (st) {
                free(buf);
                return st;
            }
            continue;
        }
        free(buf);
        if (rc) return lmdb_fail(err, s->dir, "cannot store a result", rc);
        *stored = true;
        return VT_OK;
    }
}

/* Runs fn inside a read transaction. */
static vt_status with_read(vt_result_store *s, vt_status (*fn)(vt_result_store *, MDB_txn *, void *, vt_error *),
                           void *ctx, vt_error *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_fail(err, s->dir, "cannot begin a read", rc);
    vt_status st = fn(s, txn, ctx, err);
    mdb_txn_abort(txn);
    return st;
}

typedef struct {
    const char *id;
    Vt__EvalResult **out;
    bool *has;
} get_args;

static vt_status decode(vt_result_store *s, const MDB_val *key, const MDB_val *val,
                        Vt__EvalResult **out, vt_error *err) {
    *out = vt__eval_result__unpack(NULL, val->mv_size, val->mv_data);
    if (!*out || !(*out)->task)
        return vt_fail(err, VT_ERR_FORMAT, "%s: result '%.*s' (%zu bytes) does not decode", s->dir,
                       (int)key->mv_size, (const char *)key->mv_data, val->mv_size);
    unsigned version = (*out)->schema_version;
    if (version > VT_SCHEMA_VERSION) {
        vt__eval_result__free_unpacked(*out, NULL);
        *out = NULL;
        return vt_fail(err, VT_ERR_FORMAT, "%s: result '%.*s' has schema version %u (newer than %u)",
                       s->dir, (int)key->mv_size, (const char *)key->mv_data, version,
                       VT_SCHEMA_VERSION);
    }
    return VT_OK;
}

static vt_status get_in(vt_result_store *s, MDB_txn *txn, void *ctx, vt_error *err) {
    get_args *a = ctx;
    MDB_val key = {strlen(a->id), (void *)a->id}, val;
    int rc = mdb_get(txn, s->dbi, &key, &val);
    if (rc == MDB_NOTFOUND) return VT_OK;
    if (rc) return lmdb_fail(err, s->dir, "cannot read", rc);
    if (a->has) *a->has = true;
    if (a->out) return decode(s, &key, &val, a->out, err);
    return VT_OK;
}

vt_status vt_result_store_has(vt_result_store *s, const char *task_id, bool *has, vt_error *err) {
    *has = false;
    get_args a = {task_id, NULL, has};
    return with_read(s, get_in, &a, err);
}

vt_status vt_result_store_get(vt_result_store *s, const char *task_id, Vt__EvalResult **out,
                              vt_error *err) {
    *out = NULL;
    get_args a = {task_id, out, NULL};
    return with_read(s, get_in, &a, err);
}

static vt_status count_in(vt_result_store *s, MDB_txn *txn, void *ctx, vt_error *err) {
    MDB_stat st;
    int rc = mdb_stat(txn, s->dbi, &st);
    if (rc) return lmdb_fail(err, s->dir, "cannot stat", rc);
    *(size_t *)ctx = st.ms_entries;
    return VT_OK;
}

vt_status vt_result_store_count(vt_result_store *s, size_t *count, vt_error *err) {
    *count = 0;
    return with_read(s, count_in, count, err);
}

typedef struct {
    vt_result_fn fn;
    void *ctx;
} each_args;

static vt_status each_in(vt_result_store *s, MDB_txn *txn, void *ctx, vt_error *err) {
    each_args *a = ctx;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi, &cur);
    if (rc) return lmdb_fail(err, s->dir, "cannot open a cursor", rc);
    MDB_val key, val;
    vt_status st = VT_OK;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); !rc && !st;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        Vt__EvalResult *r = NULL;
        st = decode(s, &key, &val, &r, err);
        if (!st) st = a->fn(r, a->ctx, err);
        if (r) vt__eval_result__free_unpacked(r, NULL);
    }
    mdb_cursor_close(cur);
    if (!st && rc != MDB_NOTFOUND) st = lmdb_fail(err, s->dir, "cannot iterate", rc);
    return st;
}

vt_status vt_result_store_each(vt_result_store *s, vt_result_fn fn, void *ctx, vt_error *err) {
    each_args a = {fn, ctx};
    return with_read(s, each_in, &a, err);
}
