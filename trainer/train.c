/* The training loop behind `vistune train`: config -> model + recipe ->
 * stream of micro-batches -> accumulate, allreduce, clip, AdamW -> metrics,
 * checkpoints, signal agreement at every step boundary. */
#include "trainer/train.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "common/leak_check.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/sha256.h"
#include "ops/ctx.h"
#include "pipeline/batch.h"
#include "pipeline/dataset.h"
#include "pipeline/sampler.h"
#include "pipeline/stream.h"
#include "pipeline/synthetic.h"
#include "trainer/checkpoint.h"
#include "trainer/dist.h"
#include "trainer/heldout.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/model.h"
#include "trainer/recipe.h"
#include "trainer/run_args.h"
#include "trainer/signals.h"

/* Everything the run config says (defaults in train_config_defaults). */
typedef struct train_config {
    const char *run_dir;
    const char *recipe_name;
    int64_t seed;
    /* data */
    int source; /* 0 = store (vt_dataset), 1 = synthetic */
    int64_t num_samples, seq_len;
    /* train */
    int64_t steps, global_batch, micro_batch, warmup_steps, threads;
    int backend; /* vt_backend */
    double lr, min_lr, weight_decay, beta1, beta2, eps, max_grad_norm;
    double bucket_mb; /* gradient allreduce bucket size */
    /* checkpoint */
    int64_t ckpt_every, keep_last, pin_every;
    /* validation */
    int64_t val_every, val_items, val_max_new;
    /* initial weights (a checkpoint of any recipe), unless resuming */
    const char *init_from;
    /* metrics */
    int64_t log_every;
    bool tensorboard;
    int progress; /* -1 auto */
    /* stream: loader ranks (pipeline/stream.h roles) */
    int64_t loaders_per_node;
    const char *transport;
} train_config;

static const char *const SOURCES[] = {"store", "synthetic"};
static const char *const PROGRESS[] = {"auto", "never", "always"};
static const char *const BACKENDS[] = {"cpu", "cuda"}; /* in vt_backend order */

static void train_config_defaults(train_config *t) {
    memset(t, 0, sizeof *t);
    t->run_dir = "runs/default";
    t->recipe_name = "stage2";
    t->seed = 1;
    t->num_samples = 256;
    t->seq_len = 32;
    t->steps = 100;
    t->global_batch = 8;
    t->micro_batch = 0; /* 0 = G / R: no accumulation */
    t->warmup_steps = -1; /* -1 = 3% of steps, rounded up */
    t->threads = 1;
    t->lr = 1e-3;
    t->min_lr = 0;
    t->weight_decay = 0;
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    t->eps = 1e-8;
    t->max_grad_norm = 1.0;
    t->bucket_mb = 4.0;
    t->ckpt_every = 50;
    t->val_every = -1; /* -1 = at the last step only, 0 = never */
    t->val_items = 256;
    t->val_max_new = 16;
    t->keep_last = 2;
    t->pin_every = 0;
    t->log_every = 10;
    t->tensorboard = true;
    t->progress = -1;
    t->transport = "auto";
}

#define TRY(x)                       \
    do {                             \
        if ((st = (x)) != VT_OK) goto done; \
    } while (0)

static vt_status read_train_config(const vt_config *c, train_config *t, vt_error *err) {
    vt_status st = VT_OK;
    int src = 0, prog = 0;
    TRY(vt_config_string(c, "run_dir", &t->run_dir, err));
    TRY(vt_config_string(c, "recipe", &t->recipe_name, err));
    TRY(vt_config_int(c, "seed", &t->seed, err));
    src = 0;
    TRY(vt_config_enum(c, "data.source", SOURCES, 2, &src, err));
    TRY(vt_config_int_range(c, "data.num_samples", 1, INT64_C(1) << 40, &t->num_samples, err));
    TRY(vt_config_int_range(c, "data.seq_len", 2, 1 << 20, &t->seq_len, err));
    TRY(vt_config_int_range(c, "train.steps", 1, INT64_C(1) << 40, &t->steps, err));
    TRY(vt_config_int_range(c, "train.global_batch", 1, 1 << 24, &t->global_batch, err));
    TRY(vt_config_int_range(c, "train.micro_batch", 0, 1 << 24, &t->micro_batch, err));
    TRY(vt_config_int_range(c, "train.warmup_steps", -1, INT64_C(1) << 40, &t->warmup_steps, err));
    TRY(vt_config_int_range(c, "train.threads", 0, 1024, &t->threads, err));
    TRY(vt_config_enum(c, "train.backend", BACKENDS, 2, &t->backend, err));
    TRY(vt_config_double(c, "train.lr", &t->lr, err));
    TRY(vt_config_double(c, "train.min_lr", &t->min_lr, err));
    TRY(vt_config_double(c, "train.weight_decay", &t->weight_decay, err));
    TRY(vt_config_double(c, "train.beta1", &t->beta1, err));
    TRY(vt_config_double(c, "train.beta2", &t->beta2, err));
    TRY(vt_config_double(c, "train.eps", &t->eps, err));
    TRY(vt_config_double(c, "train.max_grad_norm", &t->max_grad_norm, err));
    TRY(vt_config_double(c, "train.allreduce_bucket_mb", &t->bucket_mb, err));
    TRY(vt_config_int_range(c, "train.val_every", -1, INT64_C(1) << 40, &t->val_every, err));
    TRY(vt_config_int_range(c, "train.val_items", 0, INT64_C(1) << 40, &t->val_items, err));
    TRY(vt_config_int_range(c, "train.val_max_new_tokens", 1, 4096, &t->val_max_new, err));
    TRY(vt_config_string(c, "train.init_from", &t->init_from, err));
    TRY(vt_config_int_range(c, "checkpoint.every", 1, INT64_C(1) << 40, &t->ckpt_every, err));
    TRY(vt_config_int_range(c, "checkpoint.keep_last", 1, 1 << 20, &t->keep_last, err));
    TRY(vt_config_int_range(c, "checkpoint.pin_every", 0, INT64_C(1) << 40, &t->pin_every, err));
    TRY(vt_config_int_range(c, "metrics.log_every", 1, 1 << 30, &t->log_every, err));
    TRY(vt_config_bool(c, "metrics.tensorboard", &t->tensorboard, err));
    TRY(vt_config_int_range(c, "stream.loaders_per_node", 0, 1024, &t->loaders_per_node, err));
    TRY(vt_config_string(c, "stream.transport", &t->transport, err));
    prog = 0;
    if (vt_config_has(c, "metrics.progress")) {
        TRY(vt_config_enum(c, "metrics.progress", PROGRESS, 3, &prog, err));
        t->progress = prog == 0 ? -1 : prog == 1 ? 0 : 1;
    }
    t->source = src;
    if (!(t->beta1 >= 0 && t->beta1 < 1) || !(t->beta2 >= 0 && t->beta2 < 1))
        st = vt_fail(err, VT_ERR_ARG, "%s: train.beta1/beta2 must be in [0, 1)", vt_config_name(c));
    else if (!(t->bucket_mb > 0 && t->bucket_mb <= 4096))
        st = vt_fail(err, VT_ERR_ARG, "%s: train.allreduce_bucket_mb must be in (0, 4096]", vt_config_name(c));
    else if (!(t->eps > 0) || !(t->weight_decay >= 0))
        st = vt_fail(err, VT_ERR_ARG, "%s: train.eps must be > 0 and train.weight_decay >= 0", vt_config_name(c));
done:
    return st;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Everything one run holds. */
typedef struct run {
    train_config tc;
    vt_config *cfg;
    const char *cfg_text;
    size_t cfg_len;
    const vt_recipe *recipe;
    void *recipe_state;
    vt_model_config mc;
    vt_ctx *ctx;
    vt_model *model;
    MPI_Comm comm; /* trainers */
    int rank, ranks; /* among trainers (loaders: world rank, 0) */
    vt_stream_roles roles; /* with stream.loaders_per_node > 0 */
    bool is_loader;
    uint32_t micro_count, micro_size;
    vt_sampler sampler;
    vt_synthetic_config syn;
    vt_dataset_config dcfg;
    vt_dataset *dataset;
    vt_batch_source source;
    vt_heldout_split split; /* train / val sample lists (store source) */
    vt_dataset *val_data;   /* a second handle, no augmentation (rank 0) */
    vt_batch val_batch;
    size_t val_n;           /* held-out items validated */
    vt_val_result last_val;
    bool have_val;
    vt_stream *stream;
    vt_batch *batches; /* micro_count micro-batches of one step: views into the stream, valid for the step */
    vt_grad_sync *sync;
    /* The recipe's own trainable parameters (recipe.h param_groups); the loop
     * owns their moments and gradient syncs. */
    vt_param_group groups[VT_RECIPE_MAX_GROUPS];
    vt_grad_sync *group_sync[VT_RECIPE_MAX_GROUPS];
    int ngroups;
    vt_metrics *metrics;
    vt_lr_schedule sched;
    char ckpt_root[PATH_MAX];
    uint64_t step; /* optimizer steps done */
} run;

static vt_status save_checkpoint(run *r, char *path_out, vt_error *err) {
    vt_ckpt_writer *w;
    vt_status st = vt_ckpt_begin(r->ckpt_root, r->step, r->comm, &w, err);
    if (st) return st;
    /* Replicated state: rank 0 writes it; the barrier in commit orders it. */
    if (r->rank == 0) {
        char stepstr[32], opt[PATH_MAX];
        snprintf(stepstr, sizeof stepstr, "%llu", (unsigned long long)r->step);
        const char *meta[] = {"vistune_step", stepstr, "vistune_recipe", r->recipe->name, NULL};
        st = vt_model_export_hf(r->model, vt_ckpt_writer_dir(w), meta, err);
        if (!st && (r->model->num_trainable || r->ngroups)) {
            st = vt_path_join(opt, sizeof opt, vt_ckpt_writer_dir(w), "optimizer.safetensors", err);
            if (!st) st = vt_model_save_optimizer_ex(r->model, r->groups, r->ngroups, opt, meta, err);
        }
    }
    if (!st && r->recipe->save) st = r->recipe->save(r->recipe_state, w, err);
    /* Agree before the collective commit so nobody waits on a failed rank. */
    int bad = st != VT_OK, anybad = 0;
    MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, r->comm);
    if (anybad) {
        vt_ckpt_abort(w);
        return st ? st : vt_fail(err, VT_ERR_IO, "checkpoint: another rank failed to write its files");
    }
    uint64_t spe = vt_sampler_steps_per_epoch(&r->sampler);
    vt_ckpt_info info = {.recipe = r->recipe->name, .step = r->step, .epoch = r->step / spe,
                         .step_in_epoch = r->step % spe, .global_batch = (uint64_t)r->tc.global_batch,
                         .seed = (uint64_t)r->tc.seed, .samples_seen = r->step * (uint64_t)r->tc.global_batch,
                         .trainer_count = (uint32_t)r->ranks, .config_yaml = r->cfg_text,
                         .config_len = r->cfg_len};
    st = vt_ckpt_commit(w, &info, path_out, err);
    if (!st && r->rank == 0) st = vt_ckpt_prune(r->ckpt_root, (int)r->tc.keep_last, (uint64_t)r->tc.pin_every, err);
    return st;
}

static vt_status load_checkpoint(run *r, const char *path, vt_error *err) {
    vt_ckpt *c;
    vt_status st = vt_ckpt_open(path, &c, err);
    if (st) return st;
    const vt_ckpt_info *in = vt_ckpt_get_info(c);
    char file[PATH_MAX], hex[65];
    if (strcmp(in->recipe, r->recipe->name) != 0) {
        st = vt_fail(err, VT_ERR_STATE, "%s: checkpoint of recipe '%s', run config says '%s'", path, in->recipe,
                     r->recipe->name);
        goto done;
    }
    if (in->global_batch != (uint64_t)r->tc.global_batch || in->seed != (uint64_t)r->tc.seed) {
        st = vt_fail(err, VT_ERR_STATE,
                     "%s: checkpoint has global_batch %llu and seed %llu, the run config %lld and %lld; "
                     "the sample order would change",
                     path, (unsigned long long)in->global_batch, (unsigned long long)in->seed,
                     (long long)r->tc.global_batch, (long long)r->tc.seed);
        goto done;
    }
    vt_sha256_hex(r->cfg_text, r->cfg_len, hex);
    if (r->rank == 0 && strcmp(hex, in->config_sha256) != 0)
        vt_warn("resume: the run config differs from the one in %s (continuing with the new one)", path);
    if ((st = vt_ckpt_file(c, "model.safetensors", file, sizeof file, err))) goto done;
    if ((st = vt_model_import_hf(r->model, file, err))) goto done;
    if (r->model->num_trainable || r->ngroups) {
        if ((st = vt_ckpt_file(c, "optimizer.safetensors", file, sizeof file, err))) goto done;
        if ((st = vt_model_load_optimizer_ex(r->model, r->groups, r->ngroups, file, err))) goto done;
    }
    if (r->recipe->load && (st = r->recipe->load(r->recipe_state, c, err))) goto done;
    r->step = in->step;
    if (r->rank == 0)
        vt_info("resumed from %s at step %llu (saved with %u trainer ranks, now %d)", path,
                (unsigned long long)in->step, in->trainer_count, r->ranks);
done:
    vt_ckpt_close(c);
    return st;
}

/* One optimizer step: fetch the step's micro-batches, normalise by the
 * global supervised-token count, forward/backward, allreduce, AdamW. */
static size_t bucket_floats(const train_config *t) {
    double n = t->bucket_mb * (1 << 20) / sizeof(float);
    return n < 1 ? 1 : (size_t)n;
}

/* Backward reports finished gradient ranges (model.h grads_ready): start
 * their allreduce while the rest of backward runs. */
static vt_status start_ready_buckets(void *sync, size_t ready_from, vt_error *err) {
    return vt_grad_sync_ready(sync, ready_from, err);
}

static vt_status train_step(run *r, vt_step_metrics *sm, vt_error *err) {
    vt_status st;
    double t0 = now_s(), stall = 0;
    int64_t counts[2] = {0, 0}; /* supervised tokens, images */
    for (uint32_t k = 0; k < r->micro_count; k++) {
        double w0 = now_s();
        if ((st = vt_stream_next_view(r->stream, &r->batches[k], err))) return st;
        stall += now_s() - w0;
        const vt_batch *b = &r->batches[k];
        uint32_t T = b->shape.seq_len;
        for (uint32_t i = 0; i < b->shape.batch; i++)
            for (int32_t t = 0; t < b->lengths[i] && t < (int32_t)T; t++) counts[0] += b->loss_mask[(size_t)i * T + t];
        counts[1] += b->shape.channels ? b->shape.batch : 0;
    }
    int64_t global[2];
    MPI_Allreduce(counts, global, 2, MPI_INT64_T, MPI_SUM, r->comm);
    float scale = global[0] > 0 ? 1.0f / (float)global[0] : 0.0f;
    if ((st = vt_model_zero_grad(r->model, err))) return st;
    for (int g = 0; g < r->ngroups; g++)
        if ((st = vt_ctx_memset_zero(r->ctx, r->groups[g].grads, r->groups[g].n * sizeof(float))))
            return vt_fail(err, st, "train: zeroing the gradients of '%s'", r->groups[g].name);
    double loss_sum = 0, progress = (double)r->step / (double)r->tc.steps;
    vt_recipe_step rs = {.step = r->step, .total_steps = (uint64_t)r->tc.steps, .progress = progress,
                         .seed = (uint64_t)r->tc.seed, .comm = r->comm, .rank = r->rank, .ranks = r->ranks,
                         .batches = r->batches, .micro_count = r->micro_count, .global_loss_tokens = global[0]};
    if (r->recipe->begin_step && (st = r->recipe->begin_step(r->recipe_state, &rs, err))) return st;
    for (uint32_t k = 0; k < r->micro_count; k++) {
        double ls = 0;
        /* The last micro-batch's backward makes the model's gradients final,
         * block by block: their buckets start reducing during it. */
        bool last = k + 1 == r->micro_count && r->model->num_trainable;
        if (last) {
            vt_grad_sync_begin(r->sync);
            r->model->grads_ready = (vt_grads_ready){.fn = start_ready_buckets, .arg = r->sync};
        }
        if (r->recipe->micro_step)
            st = r->recipe->micro_step(r->recipe_state, r->model, &r->batches[k], scale, progress, &ls, err);
        else
            st = vt_recipe_default_micro_step(r->model, &r->batches[k], scale, &ls, err);
        r->model->grads_ready = (vt_grads_ready){0};
        if (st) return st;
        loss_sum += ls;
    }
    vt_recipe_scalars rsc = {0};
    if (r->recipe->end_step && (st = r->recipe->end_step(r->recipe_state, &rs, &rsc, err))) return st;
    if (r->model->num_trainable && (st = vt_grad_sync_finish(r->sync, 1.0f, err))) return st;
    for (int g = 0; g < r->ngroups; g++) {
        vt_grad_sync_begin(r->group_sync[g]);
        if ((st = vt_grad_sync_finish(r->group_sync[g], 1.0f, err))) return st;
    }
    double gsum = 0;
    MPI_Allreduce(&loss_sum, &gsum, 1, MPI_DOUBLE, MPI_SUM, r->comm);
    double lr = vt_lr_at(&r->sched, r->step);
    vt_adamw_hparams hp = {.lr = (float)lr, .beta1 = (float)r->tc.beta1, .beta2 = (float)r->tc.beta2,
                           .eps = (float)r->tc.eps, .weight_decay = (float)r->tc.weight_decay};
    float norm = 0;
    if ((r->model->num_trainable || r->ngroups) &&
        (st = vt_model_step_ex(r->model, r->groups, r->ngroups, &hp, (long)r->step + 1, (float)r->tc.max_grad_norm,
                               &norm, err)))
        return st;
    r->step++;
    double sl = r->micro_size * r->micro_count;
    (void)sl;
    sm->step = r->step;
    sm->loss = global[0] > 0 ? gsum / (double)global[0] : NAN;
    sm->lr = lr;
    sm->grad_norm = norm;
    sm->tokens = 0;
    for (uint32_t k = 0; k < r->micro_count; k++)
        for (uint32_t i = 0; i < r->batches[k].shape.batch; i++) sm->tokens += r->batches[k].lengths[i];
    sm->tokens *= r->ranks; /* equal shares per rank; exact enough for a rate */
    sm->images = (double)global[1];
    sm->step_seconds = now_s() - t0;
    sm->stall_seconds = stall;
    sm->n_extra = rsc.n < 8 ? rsc.n : 8;
    for (int i = 0; i < sm->n_extra; i++) {
        sm->extra_names[i] = rsc.names[i];
        sm->extra[i] = rsc.values[i];
    }
    return VT_OK;
}

/* What loaders and trainers both need: the recipe's and the model's view of
 * the data (image size, image tokens, template), the dataset or synthetic
 * source, the train split and the sampler over it. */
static vt_status setup_data(run *r, vt_error *err) {
    vt_status st;
    train_config *t = &r->tc;
    r->recipe = vt_recipe_find(t->recipe_name);
    if (!r->recipe)
        return vt_fail(err, VT_ERR_ARG, "%s: recipe: unknown '%s' (known: %s)", vt_config_name(r->cfg),
                       t->recipe_name, vt_recipe_names());
    vt_model_config_default(&r->mc);
    if (r->recipe->configure && (st = r->recipe->configure(r->cfg, &r->mc, &r->recipe_state, err))) return st;
    if ((st = vt_model_config_read(r->cfg, "model", &r->mc, err))) return st;
    /* One run file serves every command: the evaluation and Slurm sections
     * are checked strictly by `vistune eval/sched` and `vistune submit`. */
    vt_config_mark_used(r->cfg, "eval");
    vt_config_mark_used(r->cfg, "slurm");
    vt_config_mark_used(r->cfg, "bbtune"); /* `vistune bbtune` checks its own section */
    if (t->source == 0) {
        vt_dataset_config_default(&r->dcfg);
        r->dcfg.template_name = r->recipe->chat_template; /* data.template overrides */
        if ((st = vt_dataset_config_read(r->cfg, &r->dcfg, err))) return st;
        if ((st = vt_config_check_unused(r->cfg, err))) return st;
        if (!r->dcfg.store || !r->dcfg.store[0])
            return vt_fail(err, VT_ERR_ARG, "%s: data.store: required with data.source store", vt_config_name(r->cfg));
        r->dcfg.image_size = r->mc.image_size;
        r->dcfg.n_image_tokens = vt_model_image_tokens(&r->mc);
        r->dcfg.seq_len = (int)t->seq_len;
        r->dcfg.seed = (uint64_t)t->seed;
        if ((st = vt_dataset_open(&r->dcfg, &r->dataset, err))) return st;
        /* Vocabulary and image token follow the tokenizer + template unless
         * the config pins them (then they must agree). */
        int32_t dv = vt_dataset_vocab_size(r->dataset), it = vt_dataset_template(r->dataset)->image_token;
        if (!vt_config_has(r->cfg, "model.text_config.vocab_size")) r->mc.vocab = dv;
        if (!vt_config_has(r->cfg, "model.image_token_index")) r->mc.image_token_index = it;
        if (r->mc.vocab < dv || r->mc.image_token_index != it)
            return vt_fail(err, VT_ERR_ARG,
                           "%s: model vocab_size %d / image_token_index %d do not fit the tokenizer+template "
                           "(need vocab >= %d, image token %d)",
                           vt_config_name(r->cfg), r->mc.vocab, r->mc.image_token_index, dv, it);
        if ((st = vt_model_config_validate(&r->mc, err))) return st;
        /* Train on the train split only; the permutation runs over this
         * list, built in index order identically on every rank. */
        if ((st = vt_heldout_split_build(r->dataset, &r->split, err))) return st;
        if (r->split.n_train == 0)
            return vt_fail(err, VT_ERR_ARG, "%s: data.store %s: no sample in the train split",
                           vt_config_name(r->cfg), r->dcfg.store);
        t->num_samples = (int64_t)r->split.n_train;
        r->val_n = t->val_every == 0 ? 0
                   : r->split.n_val < (size_t)t->val_items ? r->split.n_val
                                                           : (size_t)t->val_items;
        if (!r->is_loader && r->rank == 0 && t->val_every != 0 && r->val_n == 0)
            vt_info("validation: the store has no val split (or train.val_items is 0): no held-out validation");
    } else {
        vt_config_mark_used(r->cfg, "data.store");
        if ((st = vt_config_check_unused(r->cfg, err))) return st;
    }
    if (t->seq_len > r->mc.max_pos)
        return vt_fail(err, VT_ERR_ARG, "%s: data.seq_len %lld exceeds model max_position_embeddings %d",
                       vt_config_name(r->cfg), (long long)t->seq_len, r->mc.max_pos);
    vt_sampler_config sc = {.num_samples = (uint64_t)t->num_samples, .seed = (uint64_t)t->seed,
                            .global_batch = (uint32_t)t->global_batch, .remainder = VT_REMAINDER_DROP,
                            .indices = r->dataset ? r->split.train : NULL};
    if ((st = vt_sampler_init(&r->sampler, &sc, err))) return st;
    /* Batches: the store through the dataset (images + chat template), or
     * the synthetic source whose token ids stay below the image token so no
     * row claims an image (text-only rows, for infrastructure tests). */
    if (r->dataset) {
        r->source = vt_dataset_source(r->dataset);
    } else {
        r->syn.seed = (uint64_t)t->seed;
        r->syn.channels = 3;
        r->syn.height = r->syn.width = (uint32_t)r->mc.image_size;
        r->syn.seq_len = (uint32_t)t->seq_len;
        r->syn.vocab = (uint32_t)(r->mc.image_token_index < r->mc.vocab ? r->mc.image_token_index : r->mc.vocab);
        vt_synthetic_source(&r->source, &r->syn);
        r->source.sample_shape.channels = 0;
    }
    return VT_OK;
}

/* The trainer's side: accumulation, model, recipe, resume, the stream from
 * the loaders (or its own source), gradient syncs, validation. */
static vt_status setup_trainer(run *r, const char *resume, vt_error *err) {
    vt_status st;
    train_config *t = &r->tc;

    /* Accumulation from the global batch: M = G / (R * micro_batch). */
    uint64_t per_rank = (uint64_t)t->global_batch / (uint64_t)r->ranks;
    if ((uint64_t)t->global_batch % (uint64_t)r->ranks)
        return vt_fail(err, VT_ERR_ARG, "train.global_batch %lld is not divisible by %d trainer ranks",
                       (long long)t->global_batch, r->ranks);
    uint64_t mb = t->micro_batch ? (uint64_t)t->micro_batch : per_rank;
    if (mb > per_rank) mb = per_rank;
    if (per_rank % mb)
        return vt_fail(err, VT_ERR_ARG,
                       "train.micro_batch %llu does not divide the per-rank batch %llu (global_batch %lld / %d ranks)",
                       (unsigned long long)mb, (unsigned long long)per_rank, (long long)t->global_batch, r->ranks);
    r->micro_count = (uint32_t)(per_rank / mb);
    r->micro_size = (uint32_t)mb;

    r->sched.peak = t->lr;
    r->sched.floor = t->min_lr;
    r->sched.total_steps = (uint64_t)t->steps;
    r->sched.warmup_steps = t->warmup_steps >= 0 ? (uint64_t)t->warmup_steps : (uint64_t)ceil(0.03 * (double)t->steps);
    if ((st = vt_lr_schedule_check(&r->sched, err))) return st;

    vt_dist_node node;
    if ((st = vt_dist_node_info(r->comm, &node, err))) return st;
    vt_ctx_options co = {.backend = (vt_backend)t->backend, .threads = (int)t->threads, .device = -1};
    if (co.backend == VT_BACKEND_CUDA) {
        if (!r->recipe->cuda)
            return vt_fail(err, VT_ERR_ARG, "train.backend cuda: recipe '%s' runs on the CPU backend only (%s run on CUDA)",
                           r->recipe->name, vt_recipe_cuda_names());
        co.device = vt_dist_pick_device(node.local_rank, vt_cuda_device_count());
        if (co.device < 0)
            return vt_fail(err, VT_ERR_DEVICE,
                           "train.backend cuda: no CUDA device visible to rank %d (CUDA_VISIBLE_DEVICES, or a build without CUDA)",
                           r->rank);
        vt_info("rank %d: CUDA device %d (node-local rank %d of %d)", r->rank, co.device, node.local_rank,
                node.local_size);
    }
    if ((st = vt_ctx_create(&r->ctx, &co, err))) return st;
    if ((st = vt_model_create(&r->model, r->ctx, &r->mc, (uint64_t)t->seed, err))) return st;
    /* train.init_from: start from another run's weights (e.g. a method recipe
     * on a stage-2 checkpoint) with a fresh step count, schedule and
     * optimizer; a resume below then overwrites them with its own. */
    if (t->init_from && t->init_from[0]) {
        vt_ckpt *c = NULL;
        char file[PATH_MAX];
        st = vt_ckpt_open(t->init_from, &c, err);
        if (!st) st = vt_ckpt_file(c, "model.safetensors", file, sizeof file, err);
        if (!st) st = vt_model_import_hf(r->model, file, err);
        vt_ckpt_close(c);
        if (st) {
            vt_error_prefix(err, "train.init_from: ");
            return st;
        }
        if (r->rank == 0) vt_info("initial weights from %s", t->init_from);
    }
    if (r->recipe->data && r->dataset &&
        (st = r->recipe->data(r->recipe_state, &r->dcfg, r->split.train, r->split.n_train, err)))
        return st;
    if (r->recipe->init && (st = r->recipe->init(r->recipe_state, r->model, (uint64_t)t->seed, err))) return st;
    if (r->recipe->param_groups) {
        if ((st = r->recipe->param_groups(r->recipe_state, r->groups, &r->ngroups, err))) return st;
        if (r->ngroups < 0 || r->ngroups > VT_RECIPE_MAX_GROUPS)
            return vt_fail(err, VT_ERR_STATE, "recipe %s: %d parameter groups", r->recipe->name, r->ngroups);
        for (int g = 0; g < r->ngroups; g++) {
            vt_param_group *pg = &r->groups[g];
            pg->m = pg->v = NULL; /* zero-filled moments */
            if ((st = vt_ctx_alloc(r->ctx, (void **)&pg->m, pg->n * sizeof(float))) ||
                (st = vt_ctx_alloc(r->ctx, (void **)&pg->v, pg->n * sizeof(float))))
                return vt_fail(err, st, "recipe %s: no memory for the moments of '%s'", r->recipe->name, pg->name);
        }
    }

    if ((st = vt_path_join(r->ckpt_root, sizeof r->ckpt_root, t->run_dir, "checkpoints", err))) return st;
    char found_path[PATH_MAX] = "";
    if (resume && !strcmp(resume, "auto")) {
        bool found = false;
        int f = 0;
        if (r->rank == 0) {
            st = vt_ckpt_find_latest(r->ckpt_root, found_path, sizeof found_path, &found, err);
            f = st ? -1 : found;
        }
        MPI_Bcast(&f, 1, MPI_INT, 0, r->comm);
        MPI_Bcast(found_path, sizeof found_path, MPI_CHAR, 0, r->comm);
        if (f < 0) return st ? st : vt_fail(err, VT_ERR_IO, "resume: rank 0 could not scan %s", r->ckpt_root);
        if (!f && r->rank == 0) vt_info("resume auto: no checkpoint under %s, starting fresh", r->ckpt_root);
    } else if (resume) {
        snprintf(found_path, sizeof found_path, "%s", resume);
    }
    if (found_path[0] && (st = load_checkpoint(r, found_path, err))) return st;
    if (r->step >= (uint64_t)t->steps && r->rank == 0)
        vt_info("already at step %llu of %lld: nothing to do", (unsigned long long)r->step, (long long)t->steps);

    uint32_t channels = r->dataset ? 3 : 0;
    vt_batch_shape bs = {.batch = r->micro_size, .channels = channels, .height = (uint32_t)r->mc.image_size,
                         .width = (uint32_t)r->mc.image_size,
                         .seq_len = (uint32_t)t->seq_len};
    vt_stream_config scfg;
    vt_stream_config_default(&scfg);
    scfg.rank = (uint32_t)r->rank;
    scfg.ranks = (uint32_t)r->ranks;
    scfg.micro_count = r->micro_count;
    scfg.sample_shape = bs;
    scfg.hold = r->micro_count; /* train_step holds a whole step's views */
    uint64_t spe = vt_sampler_steps_per_epoch(&r->sampler);
    scfg.start.epoch = r->step / spe;
    scfg.start.step = r->step % spe;
    scfg.start.micro = 0;
    if ((st = vt_stream_open(&r->stream, &scfg, &r->sampler, (const char *const *)r->roles.endpoints,
                             r->roles.n_endpoints, &r->source, err)))
        return st;
    r->batches = calloc(r->micro_count, sizeof *r->batches);
    if (!r->batches) return vt_fail(err, VT_ERR_NOMEM, "train: out of memory");
    if (r->model->num_trainable &&
        (st = vt_grad_sync_new(r->comm, r->ctx, r->model->grads, r->model->num_trainable, bucket_floats(t), &r->sync, err)))
        return st;
    for (int g = 0; g < r->ngroups; g++)
        if ((st = vt_grad_sync_new(r->comm, r->ctx, r->groups[g].grads, r->groups[g].n, (size_t)1 << 20, &r->group_sync[g], err)))
            return st;
    if (r->rank == 0 && r->val_n) {
        if (t->seq_len <= t->val_max_new)
            return vt_fail(err, VT_ERR_ARG, "%s: data.seq_len %lld leaves no room for train.val_max_new_tokens %lld",
                           vt_config_name(r->cfg), (long long)t->seq_len, (long long)t->val_max_new);
        vt_dataset_config vc = r->dcfg;
        vc.jitter = 0;
        if ((st = vt_dataset_open(&vc, &r->val_data, err))) return st;
        if ((st = vt_batch_alloc(&r->val_batch, &bs, err))) return st;
        /* Every held-out prompt must leave room for the answer: find out now,
         * not after hours of training (rows only, no model work). */
        vt_eval_row *rows = calloc(r->micro_size, sizeof *rows);
        if (!rows) return vt_fail(err, VT_ERR_NOMEM, "train: out of memory");
        for (size_t at = 0; !st && at < r->val_n; at += r->micro_size) {
            uint32_t k = (uint32_t)(r->val_n - at < r->micro_size ? r->val_n - at : r->micro_size);
            r->val_batch.shape.batch = k;
            memcpy(r->val_batch.sample_indices, r->split.val + at, k * sizeof *r->split.val);
            st = vt_dataset_fill_prompts(r->val_data, &r->val_batch, (int)t->val_max_new, NULL, NULL, rows, err);
            for (uint32_t i = 0; i < k; i++) vt_eval_row_free(&rows[i]);
        }
        free(rows);
        r->val_batch.shape.batch = r->micro_size;
        if (st) {
            vt_error_prefix(err, "%s: validation prompts need data.seq_len > prompt + train.val_max_new_tokens %lld: ",
                            vt_config_name(r->cfg), (long long)t->val_max_new);
            return VT_ERR_ARG;
        }
    }
    size_t extra_params = 0;
    for (int g = 0; g < r->ngroups; g++) extra_params += r->groups[g].n;
    if (r->rank == 0) {
        vt_metrics_config mcfg = {.dir = t->run_dir, .tensorboard = t->tensorboard, .log_every = (int)t->log_every,
                                  .total_steps = (uint64_t)t->steps, .first_step = r->step, .progress = t->progress};
        if ((st = vt_metrics_open(&mcfg, &r->metrics, err))) return st;
        vt_info("train: recipe %s, %zu params (%zu trainable) + %zu method params, %d trainer rank(s), %u loader "
                "rank(s), global batch %lld = %d x %u micro x %u, %lld steps, run dir %s",
                r->recipe->name, r->model->num_params, r->model->num_trainable, extra_params, r->ranks,
                r->roles.loader_count, (long long)t->global_batch, r->ranks, r->micro_count, r->micro_size,
                (long long)t->steps, t->run_dir);
    }
    return VT_OK;
}

static void teardown(run *r) {
    vt_val_result_free(&r->last_val);
    vt_batch_free(&r->val_batch);
    vt_dataset_close(r->val_data);
    vt_heldout_split_free(&r->split);
    vt_metrics_close(r->metrics);
    vt_grad_sync_free(r->sync);
    for (int g = 0; g < r->ngroups; g++) {
        vt_grad_sync_free(r->group_sync[g]);
        if (r->ctx) {
            if (r->groups[g].m) vt_ctx_free(r->ctx, r->groups[g].m);
            if (r->groups[g].v) vt_ctx_free(r->ctx, r->groups[g].v);
        }
    }
    free(r->batches); /* views: the stream owns their memory */
    vt_stream_close(r->stream);
    if (r->recipe && r->recipe->destroy) r->recipe->destroy(r->recipe_state);
    vt_model_free(r->model);
    if (r->ctx) vt_ctx_destroy(r->ctx);
    vt_sampler_free(&r->sampler);
    vt_dataset_close(r->dataset);
    vt_config_free(r->cfg);
}

/* Rank 0 validates on the first train.val_items held-out items; the other
 * ranks wait at the next collective. Reads the model only. */
static vt_status validate(run *r, vt_error *err) {
    if (r->rank != 0) return VT_OK;
    double t0 = now_s();
    vt_val_result_free(&r->last_val);
    r->have_val = false;
    vt_status st =
        r->recipe->validate
            ? r->recipe->validate(r->recipe_state, r->model, r->val_data, r->split.val, r->val_n, &r->val_batch,
                                  (int)r->tc.val_max_new, &r->last_val, err)
            : vt_validate(r->model, r->val_data, r->split.val, r->val_n, &r->val_batch, (int)r->tc.val_max_new,
                          &r->last_val, err);
    if (st) {
        vt_error_prefix(err, "validation at step %llu: ", (unsigned long long)r->step);
        return st;
    }
    r->have_val = true;
    const vt_val_result *v = &r->last_val;
    /* val/loss, val/acc, then val/acc/<task> per type (TensorBoard allows 64). */
    enum { MAXN = 64 };
    char names[MAXN][96];
    const char *np[MAXN];
    double vals[MAXN];
    int n = 0;
    snprintf(names[n], sizeof names[n], "val/loss");
    vals[n++] = v->loss;
    snprintf(names[n], sizeof names[n], "val/acc");
    vals[n++] = v->accuracy;
    for (size_t i = 0; i < v->n_types && n < MAXN; i++) {
        snprintf(names[n], sizeof names[n], "val/acc/%s", v->types[i].task);
        vals[n++] = v->types[i].n ? v->types[i].correct / (double)v->types[i].n : NAN;
    }
    /* then val/group_acc/<id> and val/group_n/<id> per task group */
    for (size_t i = 0; i < v->n_groups && n + 1 < MAXN; i++) {
        snprintf(names[n], sizeof names[n], "val/group_acc/%s", v->groups[i].task);
        vals[n++] = v->groups[i].n ? v->groups[i].correct / (double)v->groups[i].n : NAN;
        snprintf(names[n], sizeof names[n], "val/group_n/%s", v->groups[i].task);
        vals[n++] = (double)v->groups[i].n;
    }
    for (int i = 0; i < n; i++) np[i] = names[i];
    if (r->metrics && (st = vt_metrics_eval(r->metrics, r->step, n, np, vals, err))) return st;
    vt_info("validation at step %llu: loss %.4f, accuracy %.1f%% on %zu held-out items (%.1fs)",
            (unsigned long long)r->step, v->loss, 100.0 * v->accuracy, v->n_items, now_s() - t0);
    return VT_OK;
}

static void print_val_table(const run *r) {
    const vt_val_result *v = &r->last_val;
    vt_info("held-out accuracy at step %llu (exact match, greedy):", (unsigned long long)r->step);
    vt_info("  %-16s %6s %8s", "question type", "items", "accuracy");
    for (size_t i = 0; i < v->n_types; i++)
        vt_info("  %-16s %6zu %7.1f%%", v->types[i].task[0] ? v->types[i].task : "(none)", v->types[i].n,
                100.0 * v->types[i].correct / (double)v->types[i].n);
    for (size_t i = 0; i < v->n_groups; i++)
        vt_info("  group %-10s %6zu %7.1f%%", v->groups[i].task, v->groups[i].n,
                100.0 * v->groups[i].correct / (double)v->groups[i].n);
    vt_info("  %-16s %6zu %7.1f%%   loss %.4f", "all", v->n_items, 100.0 * v->accuracy, v->loss);
}

/* The loop proper; returns the exit status. */
static int train_loop(run *r, vt_error *err) {
    vt_status st;
    char path[PATH_MAX];
    uint64_t last_saved = r->step;
    while (r->step < (uint64_t)r->tc.steps) {
        vt_step_metrics sm = {0};
        if ((st = train_step(r, &sm, err))) return -1;
        if (r->metrics && (st = vt_metrics_step(r->metrics, &sm, err))) return -1;
        if (!isfinite(sm.loss) && r->rank == 0) vt_warn("step %llu: loss is not finite", (unsigned long long)r->step);
        vt_stop stop;
        if ((st = vt_signals_agree(r->comm, &stop, err))) return -1;
        if (stop == VT_STOP_INTERRUPT) {
            if (r->rank == 0) vt_warn("interrupted at step %llu (no checkpoint)", (unsigned long long)r->step);
            return VT_EXIT_INTERRUPTED;
        }
        bool periodic = r->step % (uint64_t)r->tc.ckpt_every == 0 || r->step == (uint64_t)r->tc.steps;
        if (periodic || stop == VT_STOP_CHECKPOINT) {
            if ((st = save_checkpoint(r, path, err))) return -1;
            last_saved = r->step;
            if (r->rank == 0) vt_info("checkpoint %s", path);
        }
        bool last = r->step == (uint64_t)r->tc.steps;
        if (r->val_n && stop != VT_STOP_CHECKPOINT &&
            (last || (r->tc.val_every > 0 && r->step % (uint64_t)r->tc.val_every == 0))) {
            /* Agree on the outcome so no rank is left in the next step's collective. */
            st = validate(r, err);
            int bad = st != VT_OK, anybad = 0;
            MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, r->comm);
            if (anybad) {
                if (!bad) vt_fail(err, VT_ERR_STATE, "validation failed on rank 0");
                return -1;
            }
        }
        if (stop == VT_STOP_CHECKPOINT) {
            if (r->rank == 0) {
                vt_signals_consume_file();
                vt_warn("stop requested: checkpointed at step %llu, exiting 3", (unsigned long long)r->step);
            }
            return VT_EXIT_CHECKPOINTED;
        }
    }
    (void)last_saved;
    if (r->rank == 0 && r->metrics) {
        vt_metrics_summary(r->metrics);
        if (r->have_val) print_val_table(r);
        if (r->sync && r->ranks > 1)
            vt_info("allreduce: %d gradient bucket(s) of %.3g MiB started during the last step's backward",
                    vt_grad_sync_early_buckets(r->sync), r->tc.bucket_mb);
        vt_info("done: checkpoints in %s, metrics in %s%s%s", r->ckpt_root, vt_metrics_jsonl_path(r->metrics),
                vt_metrics_tb_path(r->metrics) ? " and " : "",
                vt_metrics_tb_path(r->metrics) ? vt_metrics_tb_path(r->metrics) : "");
    }
    return 0;
}

/* Trainer and loader ranks (stream.loaders_per_node per node, the node's last
 * ranks) or, without loaders, every rank a trainer. Collective. */
static vt_status assign_roles(run *r, vt_error *err) {
    r->comm = MPI_COMM_NULL;
    if (r->tc.loaders_per_node == 0) {
        MPI_Comm_dup(MPI_COMM_WORLD, &r->comm);
        MPI_Comm_rank(r->comm, &r->rank);
        MPI_Comm_size(r->comm, &r->ranks);
        return VT_OK;
    }
    vt_status st = vt_stream_mpi_roles(&r->roles, (int)r->tc.loaders_per_node, r->tc.transport, NULL, err);
    if (st) {
        vt_error_prefix(err, "%s: ", vt_config_name(r->cfg));
        return st;
    }
    r->is_loader = r->roles.is_loader;
    if (r->is_loader) {
        r->rank = r->roles.world_rank;
        return VT_OK;
    }
    MPI_Comm_dup(r->roles.trainer_comm, &r->comm);
    r->rank = (int)r->roles.trainer_rank;
    r->ranks = (int)r->roles.trainer_count;
    return VT_OK;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune train RUN.yaml [--resume auto|PATH] [--set KEY=VALUE ...]\n"
            "  Train a model as the run config says (docs/training.md lists every key).\n"
            "  --resume auto   continue from the newest complete checkpoint under RUN_DIR/checkpoints\n"
            "                  (start fresh when there is none)\n"
            "  --resume PATH   continue from exactly this checkpoint directory\n"
            "  --set K=V       override one config value (repeatable), e.g. --set train.steps=200\n"
            "  --stop-file F   when F exists (checked by rank 0 after every step), checkpoint, remove F\n"
            "                  and exit 3, as on SIGUSR1 (the Slurm template's way to pass the warning)\n"
            "Run under mpirun/srun for several trainer ranks. Exit status: 0 done, 1 failed,\n"
            "2 bad usage or config, 3 checkpointed on SIGUSR1/SIGTERM/stop file (not done), 130 interrupted.\n");
}

int vt_cmd_train(int argc, char **argv) {
    vt_run_args a;
    int done = vt_run_args_parse(argc, argv, "train", usage, &a);
    if (done >= 0) return done;
    run r;
    memset(&r, 0, sizeof r);
    vt_error err = {0};
    /* Handlers first: under Slurm the time-limit warning (USR1) can arrive
     * while MPI_Init is still running, and its default action kills. They
     * are installed again after MPI_Init in case the runtime replaced them. */
    if (vt_signals_install(&err)) {
        fprintf(stderr, "vistune train: %s\n", err.msg);
        return 1;
    }
    train_config_defaults(&r.tc);
    vt_status st = vt_run_args_load(&a, &r.cfg, &err);
    if (!st) st = read_train_config(r.cfg, &r.tc, &err);
    if (st) {
        fprintf(stderr, "vistune train: %s\n", err.msg);
        vt_config_free(r.cfg);
        return 2;
    }
    r.cfg_text = vt_config_text(r.cfg, &r.cfg_len);

    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        vt_leak_check_pause();
        MPI_Init(&argc, &argv);
        vt_leak_check_resume();
    }
    int world_rank, world_size;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    vt_log_set_rank(world_size > 1 ? world_rank : -1);
    st = vt_signals_install(&err);
    if (!st) st = assign_roles(&r, &err);
    if (!st && !r.is_loader && r.rank == 0) vt_signals_watch_file(a.stop_file);
    if (!st) st = setup_data(&r, &err);
    if (!st && !r.is_loader) st = setup_trainer(&r, a.resume, &err);
    /* Every rank must be ready before anyone waits on another (a trainer for
     * batches, a loader for trainers): agree on the set-up first. */
    int bad = st != VT_OK, anybad = 0, rc = 0;
    MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (bad) {
        rc = st == VT_ERR_ARG ? 2 : 1;
        fprintf(stderr, "vistune train: %s\n", err.msg);
    } else if (anybad) {
        rc = 1;
    } else if (r.is_loader) {
        /* Serves until every trainer closed its stream. */
        if ((st = vt_loader_run(r.roles.loader, &r.sampler, &r.source, &err))) {
            rc = 1;
            fprintf(stderr, "vistune train: loader: %s\n", err.msg);
        }
    } else {
        rc = train_loop(&r, &err);
        if (rc < 0) {
            rc = 1;
            fprintf(stderr, "vistune train: %s\n", err.msg);
        }
        vt_stream_close(r.stream); /* the loaders return once every trainer has */
        r.stream = NULL;
    }
    /* Ranks that fail alone would leave the others in a collective: agree. */
    bad = rc == 1 || rc == 2;
    MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (anybad && !bad) rc = 1;
    teardown(&r);
    if (r.comm != MPI_COMM_NULL) MPI_Comm_free(&r.comm);
    if (r.tc.loaders_per_node > 0) vt_stream_roles_free(&r.roles);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return rc;
}
