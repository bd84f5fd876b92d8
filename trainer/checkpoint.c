/* Checkpoint directories: atomic publication (build in .tmp, COMPLETE last,
 * rename), content hashes for every file, retention, and the resume-side
 * scan that trusts only checkpoints whose hashes verify. */
#include "trainer/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/version.h"
#include "proto/checkpoint.pb-c.h"
#include "proto/schema.h"

enum { MAX_META_BYTES = 64 << 20, MAX_FILES = 256 };

void vt_ckpt_dirname(uint64_t step, char out[32]) {
    snprintf(out, 32, "ckpt-%09llu", (unsigned long long)step);
}

/* ---- writing ---------------------------------------------------------- */

struct vt_ckpt_writer {
    MPI_Comm comm;
    int rank;
    uint64_t step;
    char root[PATH_MAX];
    char tmp[PATH_MAX];
    char final[PATH_MAX];
};

/* Rank 0's status to everybody; the message travels only on failure. */
static vt_status share_status(MPI_Comm comm, int rank, vt_status st, vt_error *err) {
    int code = (int)st;
    MPI_Bcast(&code, 1, MPI_INT, 0, comm);
    if (code == VT_OK) return VT_OK;
    char msg[VT_ERROR_MSG_MAX];
    if (rank == 0) snprintf(msg, sizeof msg, "%s", err ? err->msg : "checkpoint failed on rank 0");
    MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm);
    if (rank != 0) vt_fail(err, (vt_status)code, "%s", msg);
    return (vt_status)code;
}

vt_status vt_ckpt_begin(const char *root, uint64_t step, MPI_Comm comm, vt_ckpt_writer **out,
                        vt_error *err) {
    *out = NULL;
    vt_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
    w->comm = comm;
    MPI_Comm_rank(comm, &w->rank);
    w->step = step;
    char name[32], tmpname[40];
    vt_ckpt_dirname(step, name);
    snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
    vt_status st = VT_OK;
    if (snprintf(w->root, sizeof w->root, "%s", root) >= (int)sizeof w->root ||
        (st = vt_path_join(w->tmp, sizeof w->tmp, root, tmpname, err)) ||
        (st = vt_path_join(w->final, sizeof w->final, root, name, err))) {
        if (!st) st = vt_fail(err, VT_ERR_RANGE, "checkpoint: root path too long");
    }
    if (!st && w->rank == 0) {
        if (!(st = vt_mkdir_p(root, err)) && !(st = vt_remove_tree(w->tmp, err))) {
            if (vt_path_exists(w->final))
                st = vt_fail(err, VT_ERR_STATE, "%s: checkpoint for step %llu already exists", w->final,
                             (unsigned long long)step);
            else if (mkdir(w->tmp, 0755) != 0)
                st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create", w->tmp);
        }
    }
    st = share_status(comm, w->rank, st, err);
    if (st) {
        free(w);
        return st;
    }
    *out = w;
    return VT_OK;
}

const char *vt_ckpt_writer_dir(const vt_ckpt_writer *w) { return w->tmp; }

int vt_ckpt_writer_rank(const vt_ckpt_writer *w) { return w->rank; }

vt_status vt_ckpt_put(vt_ckpt_writer *w, const char *name, const void *data, size_t len, vt_error *err) {
    if (!name[0] || strchr(name, '/') || name[0] == '.')
        return vt_fail(err, VT_ERR_ARG, "checkpoint: bad file name '%s'", name);
    char path[PATH_MAX];
    vt_status st = vt_path_join(path, sizeof path, w->tmp, name, err);
    if (st) return st;
    return vt_write_file_atomic(path, data, len, err);
}

static vt_status hash_file(const char *path, char hex[65], vt_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot open", path);
    vt_sha256 h;
    vt_sha256_init(&h);
    unsigned char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            vt_status st = vt_fail_errno(err, VT_ERR_IO, "%s: read failed", path);
            close(fd);
            return st;
        }
        if (n == 0) break;
        vt_sha256_update(&h, buf, (size_t)n);
    }
    close(fd);
    unsigned char d[32];
    vt_sha256_final(&h, d);
    vt_hex_encode(d, 32, hex);
    hex[64] = 0;
    return VT_OK;
}

static int is_reserved(const char *name) {
    return !strcmp(name, "meta.pb") || !strcmp(name, "COMPLETE") || !strcmp(name, "PINNED");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the regular data files of dir (no dot files, no reserved
 * names); *names and each entry are malloc'd. */
static vt_status list_files(const char *dir, char ***names, int *count, vt_error *err) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot list", dir);
    char **v = calloc(MAX_FILES, sizeof *v);
    int n = 0;
    vt_status st = v ? VT_OK : vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.' || is_reserved(e->d_name)) continue;
        if (n == MAX_FILES) {
            st = vt_fail(err, VT_ERR_RANGE, "%s: more than %d files", dir, MAX_FILES);
            break;
        }
        if (!(v[n] = strdup(e->d_name))) st = vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
        else n++;
    }
    closedir(d);
    if (st) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return st;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return VT_OK;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Rank 0's part of commit: hash, meta.pb, COMPLETE, rename. */
static vt_status commit_local(vt_ckpt_writer *w, vt_ckpt_info *info, vt_error *err) {
    char **names = NULL;
    int nfiles = 0;
    vt_status st = list_files(w->tmp, &names, &nfiles, err);
    if (st) return st;
    char (*hex)[65] = calloc((size_t)nfiles + 1, sizeof *hex);
    Vt__CheckpointMeta__FilesSha256Entry *ents = calloc((size_t)nfiles + 1, sizeof *ents);
    Vt__CheckpointMeta__FilesSha256Entry **entp = calloc((size_t)nfiles + 1, sizeof *entp);
    Vt__RngState rngs[VT_CKPT_MAX_RNG], *rngp[VT_CKPT_MAX_RNG];
    uint32_t blocks[VT_CKPT_MAX_RNG][4];
    unsigned char *packed = NULL;
    if (!hex || !ents || !entp) {
        st = vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
        goto done;
    }
    for (int i = 0; i < nfiles; i++) {
        char path[PATH_MAX];
        if ((st = vt_path_join(path, sizeof path, w->tmp, names[i], err))) goto done;
        if ((st = vt_fsync_path(path, err))) goto done;
        if ((st = hash_file(path, hex[i], err))) goto done;
        vt__checkpoint_meta__files_sha256_entry__init(&ents[i]);
        ents[i].key = names[i];
        ents[i].value = hex[i];
        entp[i] = &ents[i];
    }
    vt_sha256_hex(info->config_yaml ? info->config_yaml : "", info->config_yaml ? info->config_len : 0,
                  info->config_sha256);

    Vt__CheckpointMeta m = VT__CHECKPOINT_META__INIT;
    m.schema_version = VT_SCHEMA_VERSION;
    m.vistune_version = (char *)VT_VERSION;
    m.recipe = (char *)(info->recipe ? info->recipe : "");
    m.step = info->step;
    m.epoch = (uint32_t)info->epoch;
    m.step_in_epoch = info->step_in_epoch;
    m.global_batch = info->global_batch;
    m.seed = info->seed;
    m.trainer_count = info->trainer_count;
    m.config_yaml = (char *)(info->config_yaml ? info->config_yaml : "");
    m.config_sha256 = info->config_sha256;
    m.created_unix = (uint64_t)time(NULL);
    m.samples_seen = info->samples_seen;
    if (info->n_rng < 0 || info->n_rng > VT_CKPT_MAX_RNG) {
        st = vt_fail(err, VT_ERR_ARG, "checkpoint: %d RNG states (max %d)", info->n_rng, VT_CKPT_MAX_RNG);
        goto done;
    }
    for (int i = 0; i < info->n_rng; i++) {
        vt__rng_state__init(&rngs[i]);
        rngs[i].name = (char *)info->rng_names[i];
        rngs[i].key = info->rng[i].key;
        rngs[i].counter = info->rng[i].counter;
        rngs[i].used = info->rng[i].used;
        memcpy(blocks[i], info->rng[i].block, sizeof blocks[i]);
        rngs[i].n_block = 4;
        rngs[i].block = blocks[i];
        rngp[i] = &rngs[i];
    }
    m.n_rng = (size_t)info->n_rng;
    m.rng = rngp;
    m.n_files_sha256 = (size_t)nfiles;
    m.files_sha256 = entp;

    size_t len = vt__checkpoint_meta__get_packed_size(&m);
    packed = malloc(len ? len : 1);
    if (!packed) {
        st = vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
        goto done;
    }
    vt__checkpoint_meta__pack(&m, packed);
    char path[PATH_MAX], mhex[65];
    if ((st = vt_path_join(path, sizeof path, w->tmp, "meta.pb", err))) goto done;
    if ((st = vt_write_file_atomic(path, packed, len, err))) goto done;
    vt_sha256_hex(packed, len, mhex);
    mhex[64] = '\n';
    if ((st = vt_path_join(path, sizeof path, w->tmp, "COMPLETE", err))) goto done;
    if ((st = vt_write_file_atomic(path, mhex, 65, err))) goto done;
    if ((st = vt_fsync_dir(w->tmp, err))) goto done;
    if (rename(w->tmp, w->final) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot rename to %s", w->tmp, w->final);
        goto done;
    }
    st = vt_fsync_dir(w->root, err);
done:
    free(packed);
    free(entp);
    free(ents);
    free(hex);
    free_names(names, nfiles);
    return st;
}

vt_status vt_ckpt_commit(vt_ckpt_writer *w, vt_ckpt_info *info, char *path_out, vt_error *err) {
    /* Every rank has finished writing its files before rank 0 hashes them. */
    MPI_Barrier(w->comm);
    vt_status st = w->rank == 0 ? commit_local(w, info, err) : VT_OK;
    if (st && w->rank == 0) vt_remove_tree(w->tmp, NULL);
    st = share_status(w->comm, w->rank, st, err);
    if (!st && path_out) snprintf(path_out, PATH_MAX, "%s", w->final);
    if (!st) vt_sha256_hex(info->config_yaml ? info->config_yaml : "", info->config_yaml ? info->config_len : 0,
                           info->config_sha256);
    free(w);
    return st;
}

void vt_ckpt_abort(vt_ckpt_writer *w) {
    if (!w) return;
    MPI_Barrier(w->comm);
    if (w->rank == 0) vt_remove_tree(w->tmp, NULL);
    free(w);
}

/* ---- scanning and retention ------------------------------------------- */

/* Step of a final checkpoint directory name ("ckpt-" + exactly 9 digits),
 * or -1 for anything else (.tmp dirs included). */
static int64_t parse_name(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0 || strlen(name) != 14) return -1;
    int64_t v = 0;
    for (int i = 5; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of the final-named checkpoint dirs under root, newest first. */
static vt_status scan_steps(const char *root, int64_t **steps, int *count, vt_error *err) {
    *steps = NULL;
    *count = 0;
    DIR *d = opendir(root);
    if (!d) {
        if (errno == ENOENT) return VT_OK;
        return vt_fail_errno(err, VT_ERR_IO, "%s: cannot list", root);
    }
    int cap = 16, n = 0;
    int64_t *v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        int64_t s = parse_name(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            int64_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
        }
        v[n++] = s;
    }
    closedir(d);
    if (!v) return vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
    qsort(v, (size_t)n, sizeof *v, cmp_desc);
    *steps = v;
    *count = n;
    return VT_OK;
}

vt_status vt_ckpt_pin(const char *ckpt_dir, vt_error *err) {
    char path[PATH_MAX];
    vt_status st = vt_path_join(path, sizeof path, ckpt_dir, "PINNED", err);
    if (st) return st;
    return vt_write_file_atomic(path, "pinned\n", 7, err);
}

vt_status vt_ckpt_prune(const char *root, int keep_last, uint64_t pin_every, vt_error *err) {
    if (keep_last < 1) return vt_fail(err, VT_ERR_ARG, "checkpoint.keep_last: must be >= 1 (got %d)", keep_last);
    int64_t *steps;
    int n;
    vt_status st = scan_steps(root, &steps, &n, err);
    if (st) return st;
    int kept = 0;
    for (int i = 0; i < n && !st; i++) {
        char name[32], dir[PATH_MAX], pin[PATH_MAX];
        vt_ckpt_dirname((uint64_t)steps[i], name);
        if ((st = vt_path_join(dir, sizeof dir, root, name, err))) break;
        if ((st = vt_path_join(pin, sizeof pin, dir, "PINNED", err))) break;
        bool pinned = (pin_every > 0 && steps[i] % (int64_t)pin_every == 0) || vt_path_exists(pin);
        if (kept++ < keep_last || pinned) continue;
        vt_debug("checkpoint: pruning %s", dir);
        st = vt_remove_tree(dir, err);
    }
    free(steps);
    if (st) return st;
    /* Leftover .tmp dirs are crashed writes; nobody else writes here now. */
    DIR *d = opendir(root);
    if (!d) return VT_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ckpt-", 5) || l < 4 || strcmp(e->d_name + l - 4, ".tmp")) continue;
        char dir[PATH_MAX];
        if (vt_path_join(dir, sizeof dir, root, e->d_name, NULL) == VT_OK) {
            vt_warn("checkpoint: removing incomplete %s", dir);
            vt_remove_tree(dir, NULL);
        }
    }
    closedir(d);
    return VT_OK;
}

/* ---- reading ---------------------------------------------------------- */

struct vt_ckpt {
    char path[PATH_MAX];
    Vt__CheckpointMeta *meta;
    vt_ckpt_info info;
};

vt_status vt_ckpt_open(const char *ckpt_dir, vt_ckpt **out, vt_error *err) {
    *out = NULL;
    vt_ckpt *c = calloc(1, sizeof *c);
    if (!c) return vt_fail(err, VT_ERR_NOMEM, "checkpoint: out of memory");
    char path[PATH_MAX];
    char *complete = NULL, *meta = NULL;
    size_t clen = 0, mlen = 0;
    vt_status st;
    snprintf(c->path, sizeof c->path, "%s", ckpt_dir);
    if (!vt_is_dir(ckpt_dir)) {
        st = vt_fail(err, VT_ERR_IO, "%s: not a checkpoint directory", ckpt_dir);
        goto fail;
    }
    if ((st = vt_path_join(path, sizeof path, ckpt_dir, "COMPLETE", err))) goto fail;
    if (!vt_path_exists(path)) {
        st = vt_fail(err, VT_ERR_STATE, "%s: incomplete (no COMPLETE marker)", ckpt_dir);
        goto fail;
    }
    if ((st = vt_read_file(path, 1024, &complete, &clen, err))) goto fail;
    if ((st = vt_path_join(path, sizeof path, ckpt_dir, "meta.pb", err))) goto fail;
    if ((st = vt_read_file(path, MAX_META_BYTES, &meta, &mlen, err))) goto fail;
    char mhex[65];
    vt_sha256_hex(meta, mlen, mhex);
    if (clen < 64 || memcmp(complete, mhex, 64) != 0) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: meta.pb does not match the COMPLETE marker", ckpt_dir);
        goto fail;
    }
    c->meta = vt__checkpoint_meta__unpack(NULL, mlen, (const uint8_t *)meta);
    if (!c->meta) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s/meta.pb: not a vt.CheckpointMeta", ckpt_dir);
        goto fail;
    }
    if (c->meta->schema_version > VT_SCHEMA_VERSION) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s/meta.pb: schema version %u is newer than this build's %u",
                     ckpt_dir, c->meta->schema_version, VT_SCHEMA_VERSION);
        goto fail;
    }
    for (size_t i = 0; i < c->meta->n_files_sha256; i++) {
        const char *name = c->meta->files_sha256[i]->key, *want = c->meta->files_sha256[i]->value;
        char fhex[65];
        if (!name[0] || strchr(name, '/') || name[0] == '.') {
            st = vt_fail(err, VT_ERR_FORMAT, "%s/meta.pb: bad file name '%s'", ckpt_dir, name);
            goto fail;
        }
        if ((st = vt_path_join(path, sizeof path, ckpt_dir, name, err))) goto fail;
        if ((st = hash_file(path, fhex, err))) goto fail;
        if (strcmp(fhex, want) != 0) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: SHA-256 mismatch (file changed or truncated)", path);
            goto fail;
        }
    }
    Vt__CheckpointMeta *m = c->meta;
    vt_ckpt_info *in = &c->info;
    in->recipe = m->recipe;
    in->step = m->step;
    in->epoch = m->epoch;
    in->step_in_epoch = m->step_in_epoch;
    in->global_batch = m->global_batch;
    in->seed = m->seed;
    in->samples_seen = m->samples_seen;
    in->trainer_count = m->trainer_count;
    in->config_yaml = m->config_yaml;
    in->config_len = strlen(m->config_yaml);
    snprintf(in->config_sha256, sizeof in->config_sha256, "%s", m->config_sha256);
    in->n_rng = m->n_rng > VT_CKPT_MAX_RNG ? VT_CKPT_MAX_RNG : (int)m->n_rng;
    for (int i = 0; i < in->n_rng; i++) {
        Vt__RngState *r = m->rng[i];
        if (r->n_block != 4 || r->used > 4) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s/meta.pb: RNG state '%s' malformed", ckpt_dir, r->name);
            goto fail;
        }
        in->rng_names[i] = r->name;
        in->rng[i].key = r->key;
        in->rng[i].counter = r->counter;
        in->rng[i].used = r->used;
        memcpy(in->rng[i].block, r->block, sizeof in->rng[i].block);
    }
    free(complete);
    free(meta);
    *out = c;
    return VT_OK;
fail:
    free(complete);
    free(meta);
    vt_ckpt_close(c);
    return st;
}

void vt_ckpt_close(vt_ckpt *c) {
    if (!c) return;
    if (c->meta) vt__checkpoint_meta__free_unpacked(c->meta, NULL);
    free(c);
}

const vt_ckpt_info *vt_ckpt_get_info(const vt_ckpt *c) { return &c->info; }
const char *vt_ckpt_path(const vt_ckpt *c) { return c->path; }

vt_status vt_ckpt_file(const vt_ckpt *c, const char *name, char *out, size_t cap, vt_error *err) {
    for (size_t i = 0; i < c->meta->n_files_sha256; i++)
        if (!strcmp(c->meta->files_sha256[i]->key, name)) return vt_path_join(out, cap, c->path, name, err);
    return vt_fail(err, VT_ERR_STATE, "%s: checkpoint has no file '%s'", c->path, name);
}

vt_status vt_ckpt_read(const vt_ckpt *c, const char *name, char **data, size_t *len, vt_error *err) {
    char path[PATH_MAX];
    vt_status st = vt_ckpt_file(c, name, path, sizeof path, err);
    if (st) return st;
    return vt_read_file(path, (size_t)1 << 40, data, len, err);
}

vt_status vt_ckpt_find_latest(const char *root, char *path_out, size_t cap, bool *found, vt_error *err) {
    *found = false;
    int64_t *steps;
    int n;
    vt_status st = scan_steps(root, &steps, &n, err);
    if (st) return st;
    for (int i = 0; i < n; i++) {
        char name[32], dir[PATH_MAX];
        vt_ckpt_dirname((uint64_t)steps[i], name);
        if ((st = vt_path_join(dir, sizeof dir, root, name, err))) break;
        vt_ckpt *c;
        vt_error e = {0};
        if (vt_ckpt_open(dir, &c, &e) != VT_OK) {
            vt_warn("checkpoint: ignoring %s", e.msg);
            continue;
        }
        vt_ckpt_close(c);
        if (snprintf(path_out, cap, "%s", dir) >= (int)cap) {
            st = vt_fail(err, VT_ERR_RANGE, "%s: path too long", dir);
            break;
        }
        *found = true;
        break;
    }
    free(steps);
    return st;
}
