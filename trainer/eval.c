/* Evaluation tasks (see eval.h): plan, and run one task = prompts of a
 * shard of the benchmark under one shift, greedy answers, scores. */
#include "trainer/eval.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "pipeline/shift.h"
#include "proto/schema.h"
#include "trainer/checkpoint.h"
#include "trainer/generate.h"
#include "trainer/heldout.h"
#include "trainer/model.h"
#include "trainer/vittle.h"

/* Sections of the run file that other commands own (see BRIEF: one run file). */
static const char *const owned_elsewhere[] = {"train", "checkpoint", "metrics", "model", "recipe", "slurm",
                                              "vittle", "ross", "icl", "bbtune", "autoencoder", "stream", NULL};

static const char *const split_names[] = {"all", "train", "val", "test"};

static vt_status read_int_list(const vt_config *cfg, const char *key, int *out, int max, int *n, int lo, int hi,
                               vt_error *err) {
    int len = vt_config_len(cfg, key, err);
    if (len == -2) return err->code;
    if (len < 0) return VT_OK; /* absent: keep the default */
    if (len > max) return vt_fail(err, VT_ERR_RANGE, "%s: %s has %d entries, at most %d", vt_config_name(cfg), key, len, max);
    for (int i = 0; i < len; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s[%d]", key, i);
        int64_t v = lo;
        vt_status st = vt_config_int_range(cfg, path, lo, hi, &v, err);
        if (st) return st;
        out[i] = (int)v;
    }
    *n = len;
    return VT_OK;
}

vt_status vt_eval_config_read(const vt_config *cfg, vt_eval_config *c, vt_error *err) {
    memset(c, 0, sizeof *c);
    c->run_dir = "runs/default";
    c->checkpoint = "latest";
    c->scorer = VT_SCORE_EXACT;
    c->split = 2; /* val */
    c->shards = 1;
    c->batch_size = 8;
    c->max_new_tokens = 8;
    c->seq_len = 128;
    c->lease_seconds = 60;
    c->severities[0] = 1, c->severities[1] = 3, c->severities[2] = 5, c->nseverities = 3;
    vt_dataset_config_default(&c->data);
    vt_status st;
    int64_t seed = 0, v;
    int which;
    if ((st = vt_config_string(cfg, "run_dir", &c->run_dir, err))) return st;
    if ((st = vt_config_int(cfg, "seed", &seed, err))) return st;
    c->seed = (uint64_t)seed;
    if ((st = vt_dataset_config_read(cfg, &c->data, err))) return st;
    v = c->seq_len;
    if ((st = vt_config_int_range(cfg, "data.seq_len", 2, 1 << 20, &v, err))) return st;
    if ((st = vt_config_int_range(cfg, "eval.seq_len", 2, 1 << 20, &v, err))) return st;
    c->seq_len = v;
    c->store = c->data.store;
    if ((st = vt_config_string(cfg, "eval.store", &c->store, err))) return st;
    if ((st = vt_config_string(cfg, "eval.benchmark", &c->benchmark, err))) return st;
    which = c->split;
    if ((st = vt_config_enum(cfg, "eval.split", split_names, 4, &which, err))) return st;
    c->split = which;
    static const char *const scorers[] = {"exact", "vqa", "option", "yesno"};
    which = (int)c->scorer;
    if ((st = vt_config_enum(cfg, "eval.scorer", scorers, 4, &which, err))) return st;
    c->scorer = (vt_scorer)which;
    struct { const char *key; long *dst; int64_t lo, hi; } ints[] = {
        {"eval.limit", &c->limit, 0, INT64_C(1) << 40},      {"eval.shards", &c->shards, 1, 1 << 20},
        {"eval.batch_size", &c->batch_size, 1, 4096},        {"eval.max_new_tokens", &c->max_new_tokens, 1, 4096},
        {"eval.lease_seconds", &c->lease_seconds, 1, 86400},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = *ints[i].dst;
        if ((st = vt_config_int_range(cfg, ints[i].key, ints[i].lo, ints[i].hi, &v, err))) return st;
        *ints[i].dst = (long)v;
    }
    if ((st = vt_config_string(cfg, "eval.checkpoint", &c->checkpoint, err))) return st;
    if ((st = vt_config_string(cfg, "eval.results", &c->results, err))) return st;
    static const char *const backends[] = {"cpu", "cuda"};
    which = 0;
    if ((st = vt_config_enum(cfg, "eval.backend", backends, 2, &which, err))) return st;
    c->cuda = which == 1;
    if ((st = read_int_list(cfg, "eval.severities", c->severities, 5, &c->nseverities, 1, 5, err))) return st;
    /* Shifts: "clean" always first, then a list of names or "all". */
    c->shifts[c->nshifts++] = "clean";
    int len = vt_config_len(cfg, "eval.shifts", NULL);
    if (len == -2) {
        const char *all = NULL;
        if ((st = vt_config_string(cfg, "eval.shifts", &all, err))) return st;
        if (strcmp(all, "all"))
            return vt_fail(err, VT_ERR_ARG, "%s: eval.shifts: expected a list of shift names or \"all\", got '%s'",
                           vt_config_name(cfg), all);
        for (size_t i = 0; i < vt_shift_count() && c->nshifts < VT_EVAL_MAX_SHIFTS; i++)
            c->shifts[c->nshifts++] = vt_shift_at(i)->name;
    } else {
        for (int i = 0; i < len && c->nshifts < VT_EVAL_MAX_SHIFTS; i++) {
            char path[64];
            snprintf(path, sizeof path, "eval.shifts[%d]", i);
            const char *name = NULL;
            const vt_shift *sh;
            if ((st = vt_config_string(cfg, path, &name, err))) return st;
            if (!strcmp(name, "clean")) continue;
            if ((st = vt_shift_find(name, &sh, err))) {
                vt_error_prefix(err, "%s: %s: ", vt_config_name(cfg), path);
                return st;
            }
            c->shifts[c->nshifts++] = sh->name;
        }
    }
    if (!c->store) return vt_fail(err, VT_ERR_ARG, "%s: no evaluation store: set eval.store or data.store", vt_config_name(cfg));
    if (!c->benchmark) {
        const char *slash = strrchr(c->store, '/');
        c->benchmark = slash && slash[1] ? slash + 1 : c->store;
    }
    vt_config_mark_used(cfg, "data"); /* training-only data keys belong to `vistune train` */
    for (int i = 0; owned_elsewhere[i]; i++) vt_config_mark_used(cfg, owned_elsewhere[i]);
    return vt_config_check_unused(cfg, err);
}

vt_status vt_eval_config_load(const char *path, const char *const *sets, int nsets, const char *checkpoint,
                              const char *results, vt_config **cfg, vt_eval_config *out, vt_error *err) {
    vt_status st = vt_config_load(path, cfg, err);
    for (int i = 0; !st && i < nsets; i++) st = vt_config_set(*cfg, sets[i], err);
    if (!st) st = vt_eval_config_read(*cfg, out, err);
    if (!st && checkpoint) out->checkpoint = checkpoint;
    if (!st && results) out->results = results;
    return st;
}

vt_status vt_eval_results_dir(const vt_eval_config *c, char *out, size_t cap, vt_error *err) {
    if (c->results) {
        if (snprintf(out, cap, "%s", c->results) >= (int)cap)
            return vt_fail(err, VT_ERR_RANGE, "results path too long: %s", c->results);
        return VT_OK;
    }
    return vt_path_join(out, cap, c->run_dir, "results", err);
}

vt_status vt_eval_resolve_checkpoint(const vt_eval_config *c, char *out, size_t cap, vt_error *err) {
    if (strcmp(c->checkpoint, "latest")) {
        if (snprintf(out, cap, "%s", c->checkpoint) >= (int)cap)
            return vt_fail(err, VT_ERR_RANGE, "checkpoint path too long: %s", c->checkpoint);
        return VT_OK;
    }
    char root[PATH_MAX];
    vt_status st = vt_path_join(root, sizeof root, c->run_dir, "checkpoints", err);
    bool found = false;
    if (!st) st = vt_ckpt_find_latest(root, out, cap, &found, err);
    if (!st && !found) st = vt_fail(err, VT_ERR_IO, "%s: no complete checkpoint to evaluate", root);
    return st;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *p = path + n;
    while (p > path && p[-1] != '/') p--;
    return p;
}

vt_status vt_eval_plan_make(const vt_eval_config *c, const char *checkpoint, vt_eval_plan *plan, vt_error *err) {
    memset(plan, 0, sizeof *plan);
    size_t cells = 1 + (size_t)(c->nshifts - 1) * (size_t)c->nseverities;
    plan->tasks = calloc(cells * (size_t)c->shards, sizeof *plan->tasks);
    if (!plan->tasks) return vt_fail(err, VT_ERR_NOMEM, "eval: out of memory planning");
    char ck_name[256];
    snprintf(ck_name, sizeof ck_name, "%s", base_name(checkpoint));
    size_t ck_len = strlen(ck_name);
    while (ck_len > 1 && ck_name[ck_len - 1] == '/') ck_name[--ck_len] = '\0';
    for (int s = 0; s < c->nshifts; s++) {
        const vt_shift *sh = NULL;
        if (s > 0 && vt_shift_find(c->shifts[s], &sh, err)) return err->code;
        int nsev = s == 0 ? 1 : c->nseverities;
        for (int k = 0; k < nsev; k++)
            for (long shard = 0; shard < c->shards; shard++) {
                Vt__EvalTask *t = calloc(1, sizeof *t);
                if (!t) return vt_fail(err, VT_ERR_NOMEM, "eval: out of memory planning");
                vt__eval_task__init(t);
                int sev = s == 0 ? 0 : c->severities[k];
                char id[1024];
                snprintf(id, sizeof id, "%s/%s/%s/%d/%ld", ck_name, c->benchmark, c->shifts[s], sev, shard);
                t->task_id = strdup(id);
                t->checkpoint = strdup(checkpoint);
                t->benchmark = strdup(c->benchmark);
                t->shift = strdup(c->shifts[s]);
                t->family = strdup(sh ? sh->family : "");
                t->modality = strdup(!sh ? "clean" : sh->modality == VT_SHIFT_IMAGE ? "visual"
                                                    : sh->modality == VT_SHIFT_TEXT ? "text" : "joint");
                t->severity = (uint32_t)sev;
                t->shard = (uint32_t)shard;
                t->shard_count = (uint32_t)c->shards;
                t->catalog_version = VT_SHIFT_CATALOG_VERSION;
                t->seed = c->seed;
                plan->tasks[plan->n++] = t;
                if (!t->task_id || !t->checkpoint || !t->benchmark || !t->shift || !t->family || !t->modality)
                    return vt_fail(err, VT_ERR_NOMEM, "eval: out of memory planning");
            }
    }
    return VT_OK;
}

void vt_eval_plan_free(vt_eval_plan *plan) {
    for (size_t i = 0; i < plan->n; i++) vt__eval_task__free_unpacked(plan->tasks[i], NULL);
    free(plan->tasks);
    memset(plan, 0, sizeof *plan);
}

/* ---- running tasks ---- */

struct vt_evaluator {
    vt_eval_config c;
    char ckpt[PATH_MAX];   /* loaded checkpoint ("" = none) */
    vt_ctx *ctx;
    vt_model *model;
    vt_vittle *vittle;     /* the checkpoint's Vittle layer (inference form), if it has one */
    vt_dataset *data;
    uint64_t *items;       /* the benchmark: indices of the split, limited */
    size_t nitems;
    vt_shift_env *env;
    vt_batch batch;
    bool have_batch;
};

vt_status vt_evaluator_open(const vt_eval_config *c, vt_evaluator **out, vt_error *err) {
    vt_evaluator *e = calloc(1, sizeof *e);
    if (!e) return vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
    e->c = *c;
    vt_ctx_options o = {.backend = c->cuda ? VT_BACKEND_CUDA : VT_BACKEND_CPU};
    vt_status st = vt_ctx_create(&e->ctx, &o, err);
    if (!st) st = vt_shift_env_open(&e->env, NULL, err);
    if (st) {
        vt_evaluator_close(e);
        return st;
    }
    *out = e;
    return VT_OK;
}

static void unload(vt_evaluator *e) {
    if (e->have_batch) vt_batch_free(&e->batch);
    e->have_batch = false;
    vt_dataset_close(e->data);
    e->data = NULL;
    vt_vittle_free(e->vittle);
    e->vittle = NULL;
    vt_model_free(e->model);
    e->model = NULL;
    free(e->items);
    e->items = NULL;
    e->nitems = 0;
    e->ckpt[0] = '\0';
}

void vt_evaluator_close(vt_evaluator *e) {
    if (!e) return;
    unload(e);
    vt_shift_env_close(e->env);
    vt_ctx_destroy(e->ctx);
    free(e);
}

/* The benchmark: the first `limit` items of eval.split, by the same split
 * lists training uses (trainer/heldout.h). */
static vt_status select_items(vt_evaluator *e, vt_error *err) {
    uint64_t count = vt_dataset_count(e->data);
    vt_heldout_split sp = {0};
    const uint64_t *from = NULL;
    size_t n = (size_t)count;
    if (e->c.split != 0) {
        vt_status st = vt_heldout_split_build(e->data, &sp, err);
        if (st) return st;
        from = e->c.split == VT__SPLIT__SPLIT_TRAIN ? sp.train : e->c.split == VT__SPLIT__SPLIT_VAL ? sp.val : sp.test;
        n = e->c.split == VT__SPLIT__SPLIT_TRAIN ? sp.n_train : e->c.split == VT__SPLIT__SPLIT_VAL ? sp.n_val : sp.n_test;
    }
    if (e->c.limit > 0 && n > (size_t)e->c.limit) n = (size_t)e->c.limit;
    e->items = malloc((n ? n : 1) * sizeof *e->items);
    if (e->items)
        for (size_t i = 0; i < n; i++) e->items[i] = from ? from[i] : i;
    e->nitems = e->items ? n : 0;
    vt_heldout_split_free(&sp);
    return e->items ? VT_OK : vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
}

/* Model from the checkpoint's config.json + model.safetensors (+ the Vittle
 * layer from vittle.safetensors when the checkpoint has one), the dataset
 * with the model's geometry, and the benchmark's item list. */
static vt_status load(vt_evaluator *e, const char *checkpoint, vt_error *err) {
    if (!strcmp(e->ckpt, checkpoint)) return VT_OK;
    unload(e);
    vt_ckpt *ck = NULL;
    char cfg_path[PATH_MAX], weights[PATH_MAX];
    vt_model_config mc;
    vt_model_config_default(&mc);
    vt_status st = vt_ckpt_open(checkpoint, &ck, err);
    if (!st) st = vt_ckpt_file(ck, "config.json", cfg_path, sizeof cfg_path, err);
    if (!st) st = vt_ckpt_file(ck, "model.safetensors", weights, sizeof weights, err);
    if (!st) st = vt_model_config_from_hf_json(cfg_path, &mc, err);
    if (!st) {
        mc.freeze_vision = mc.freeze_projector = mc.freeze_language = true; /* no gradients at evaluation */
        st = vt_model_create(&e->model, e->ctx, &mc, 0, err);
    }
    if (!st) st = vt_model_import_hf(e->model, weights, err);
    /* A method layer saved beside the HF weights (recipe vittle) acts at
     * inference too: h' = (1 - alpha_end) h + alpha_end mu, no noise. */
    vt_error none = {0};
    if (!st && vt_ckpt_file(ck, "vittle.safetensors", weights, sizeof weights, &none) == VT_OK)
        if (!(st = vt_vittle_attach_file(&e->vittle, e->model, weights, err)))
            vt_info("eval: %s has a Vittle layer after decoder block %d: inference form, alpha %g, no noise",
                    checkpoint, e->vittle->bn->cfg.layer, (double)e->vittle->alpha);
    vt_ckpt_close(ck);
    if (!st) {
        vt_dataset_config dc = e->c.data;
        dc.store = e->c.store;
        dc.image_size = mc.image_size;
        dc.n_image_tokens = vt_model_image_tokens(&mc);
        dc.seq_len = (int)e->c.seq_len;
        dc.seed = e->c.seed;
        dc.jitter = 0;
        if (e->c.seq_len > mc.max_pos)
            st = vt_fail(err, VT_ERR_ARG, "eval: seq_len %ld exceeds the model's max_position_embeddings %d",
                         e->c.seq_len, mc.max_pos);
        if (!st) st = vt_dataset_open(&dc, &e->data, err);
    }
    if (!st && (vt_dataset_vocab_size(e->data) > mc.vocab || vt_dataset_template(e->data)->image_token != mc.image_token_index))
        st = vt_fail(err, VT_ERR_ARG,
                     "eval: the tokenizer/template (vocabulary %d, image token %d) do not match checkpoint %s "
                     "(vocab_size %d, image_token_index %d): use the data.* settings it was trained with",
                     vt_dataset_vocab_size(e->data), vt_dataset_template(e->data)->image_token, checkpoint,
                     mc.vocab, mc.image_token_index);
    if (!st) st = select_items(e, err);
    if (!st && e->nitems == 0)
        st = vt_fail(err, VT_ERR_ARG, "%s: no items in split '%s' (eval.split)", e->c.store, split_names[e->c.split]);
    if (!st) {
        vt_batch_shape shape = {(uint32_t)e->c.batch_size, 3, (uint32_t)mc.image_size, (uint32_t)mc.image_size,
                                (uint32_t)e->c.seq_len};
        st = vt_batch_alloc(&e->batch, &shape, err);
        e->have_batch = !st;
    }
    if (st) {
        unload(e);
        return st;
    }
    snprintf(e->ckpt, sizeof e->ckpt, "%s", checkpoint);
    return VT_OK;
}

static char *trimmed(const char *s) {
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static Vt__EvalTask *copy_task(const Vt__EvalTask *t) {
    Vt__EvalTask *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = *t;
    c->task_id = strdup(t->task_id);
    c->checkpoint = strdup(t->checkpoint);
    c->benchmark = strdup(t->benchmark);
    c->shift = strdup(t->shift);
    c->family = strdup(t->family);
    c->modality = strdup(t->modality);
    return c;
}

void vt_eval_result_free(Vt__EvalResult *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_items; i++) {
        free(r->items[i]->prediction);
        free(r->items[i]->reference);
        free(r->items[i]->task);
        free(r->items[i]);
    }
    free(r->items);
    if (r->task) {
        free(r->task->task_id);
        free(r->task->checkpoint);
        free(r->task->benchmark);
        free(r->task->shift);
        free(r->task->family);
        free(r->task->modality);
        free(r->task);
    }
    free(r->worker);
    free(r->scorer);
    free(r);
}

static uint64_t unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

vt_status vt_evaluator_run(vt_evaluator *e, const Vt__EvalTask *task, void (*alive)(void *), void *alive_ctx,
                           Vt__EvalResult **out, vt_error *err) {
    *out = NULL;
    vt_status st = load(e, task->checkpoint, err);
    if (st) return st;
    vt_shift_hook_ctx hook = {NULL, (int)task->severity, e->env};
    if (strcmp(task->shift, "clean") && (st = vt_shift_find(task->shift, &hook.shift, err))) return st;
    if (task->shard_count == 0 || task->shard >= task->shard_count)
        return vt_fail(err, VT_ERR_ARG, "task %s: shard %u of %u", task->task_id, task->shard, task->shard_count);
    Vt__EvalResult *r = calloc(1, sizeof *r);
    if (!r) return vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
    vt__eval_result__init(r);
    r->scorer = NULL; /* init points strings at a static "": only malloc'd ones below */
    r->schema_version = VT_SCHEMA_VERSION;
    r->started_unix_ns = unix_ns();
    r->task = copy_task(task);
    size_t mine = 0;
    for (size_t i = task->shard; i < e->nitems; i += task->shard_count) mine++;
    r->items = calloc(mine ? mine : 1, sizeof *r->items);
    char host[256] = "host", worker[320];
    gethostname(host, sizeof host - 1);
    snprintf(worker, sizeof worker, "%s:%ld", host, (long)getpid());
    r->worker = strdup(worker);
    if (!r->task || !r->items || !r->worker) st = vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
    const int B = (int)e->c.batch_size, max_new = (int)e->c.max_new_tokens;
    int32_t *gen = malloc((size_t)B * max_new * sizeof *gen), *gen_len = malloc((size_t)B * sizeof *gen_len);
    vt_eval_row *rows = calloc((size_t)B, sizeof *rows);
    if (!st && (!gen || !gen_len || !rows)) st = vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
    vt_tokenizer *tok = e->data ? vt_dataset_tokenizer(e->data) : NULL;
    int32_t eos = tok ? vt_tokenizer_eos_id(tok) : -1, eot = e->data ? vt_dataset_template(e->data)->end_of_turn : -1;
    size_t next = task->shard;
    while (!st && next < e->nitems) {
        int n = 0;
        for (; n < B && next < e->nitems; n++, next += task->shard_count) e->batch.sample_indices[n] = e->items[next];
        e->batch.shape.batch = (uint32_t)n;
        st = vt_dataset_fill_prompts(e->data, &e->batch, max_new, hook.shift ? vt_shift_hook : NULL, &hook, rows, err);
        if (!st) st = vt_generate_greedy(e->model, &e->batch, max_new, eos, eot, gen, gen_len, err);
        for (int b = 0; !st && b < n; b++) {
            char *text = NULL;
            size_t len = 0;
            st = vt_tokenizer_decode(tok, gen + (size_t)b * max_new, (size_t)gen_len[b], VT_TOK_SKIP_SPECIAL, &text,
                                     &len, err);
            if (st) break;
            Vt__ItemResult *it = calloc(1, sizeof *it);
            if (!it) {
                free(text);
                st = vt_fail(err, VT_ERR_NOMEM, "eval: out of memory");
                break;
            }
            vt__item_result__init(it);
            it->index = e->batch.sample_indices[b];
            it->prediction = trimmed(text);
            free(text);
            it->reference = rows[b].reference;
            it->task = rows[b].task;
            rows[b].reference = rows[b].task = NULL;
            it->score = it->prediction ? vt_score(e->c.scorer, it->prediction, it->reference) : 0.0f;
            r->items[r->n_items++] = it;
        }
        for (int b = 0; b < n; b++) vt_eval_row_free(&rows[b]);
        if (alive) alive(alive_ctx);
    }
    e->batch.shape.batch = (uint32_t)B;
    free(gen);
    free(gen_len);
    free(rows);
    r->finished_unix_ns = unix_ns();
    if (st) {
        vt_error_prefix(err, "task %s: ", task->task_id);
        vt_eval_result_free(r);
        return st;
    }
    r->scorer = strdup(vt_scorer_name(e->c.scorer));
    *out = r;
    return VT_OK;
}
