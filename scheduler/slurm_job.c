/* The run config's slurm: section -> a validated vt_slurm_job -> the variables
 * of deploy/slurm/<kind>.sbatch. Values that reach a shell are single-quoted;
 * values that go into #SBATCH lines must be single safe words (sbatch, not a
 * shell, reads those), anything else is refused with the key named. */
#include "scheduler/slurm_job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "scheduler/slurm_template.h"

static const char *const kind_names[] = {"train", "eval", "nightly"};
static const char *const default_job_names[] = {"vistune-train", "vistune-eval", "vistune-nightly"};

int vt_slurm_kind_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, kind_names[i])) return i;
    return -1;
}

const char *vt_slurm_kind_name(vt_slurm_kind kind) { return kind_names[kind]; }

/* An optional string that must be an #SBATCH-safe word. */
static vt_status sbatch_word(const vt_config *cfg, const char *key, const char **out, vt_error *err) {
    vt_status st = vt_config_string(cfg, key, out, err);
    if (st) return st;
    if (*out && !vt_sbatch_safe(*out))
        return vt_fail(err, VT_ERR_ARG,
                       "%s: %s: '%s' must be one word of printable characters without quotes",
                       vt_config_name(cfg), key, *out);
    return VT_OK;
}

/* Slurm time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS. */
/* Seconds of a Slurm time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; -1 if none. */
static long slurm_time_seconds(const char *s) {
    long f[4];
    int n = 0;
    const char *dash = strchr(s, '-');
    for (const char *p = s; n < 4;) {
        if (*p < '0' || *p > '9') return -1;
        char *end;
        f[n++] = strtol(p, &end, 10);
        if (*end == '\0') break;
        if (!(*end == ':' || (*end == '-' && n == 1))) return -1;
        p = end + 1;
    }
    if (dash) { /* D-H[:M[:S]] */
        if (n < 2 || n > 4) return -1;
        long t = f[0] * 86400 + f[1] * 3600;
        if (n > 2) t += f[2] * 60;
        if (n > 3) t += f[3];
        return t;
    }
    if (n == 1) return f[0] * 60;
    if (n == 2) return f[0] * 60 + f[1];
    if (n == 3) return f[0] * 3600 + f[1] * 60 + f[2];
    return -1;
}

static vt_status time_value(const vt_config *cfg, const char *key, const char **out, vt_error *err) {
    vt_status st = vt_config_string(cfg, key, out, err);
    if (st || !*out) return st;
    if (slurm_time_seconds(*out) <= 0)
        return vt_fail(err, VT_ERR_ARG, "%s: %s: '%s' is not a Slurm time ([D-]HH:MM:SS or minutes)",
                       vt_config_name(cfg), key, *out);
    return VT_OK;
}

/* A list of strings at key into out[0..*n). */
static vt_status string_list(const vt_config *cfg, const char *key, const char **out, int *n,
                             vt_error *err) {
    int len = vt_config_len(cfg, key, err);
    if (len == -2) return err ? err->code : VT_ERR_FORMAT;
    *n = 0;
    if (len < 0) return VT_OK;
    if (len > VT_SLURM_MAX_LIST)
        return vt_fail(err, VT_ERR_RANGE, "%s: %s: at most %d entries", vt_config_name(cfg), key,
                       VT_SLURM_MAX_LIST);
    for (int i = 0; i < len; i++) {
        char item[256];
        snprintf(item, sizeof item, "%s[%d]", key, i);
        const char *v = NULL;
        vt_status st = vt_config_require_string(cfg, item, &v, err);
        if (st) return st;
        out[(*n)++] = v;
    }
    return VT_OK;
}

static vt_status abs_path(const char *cwd, const char *p, char *out, const char *key,
                          const vt_config *cfg, vt_error *err) {
    while (p[0] == '.' && p[1] == '/') p += 2 + strspn(p + 2, "/");
    if (!strcmp(p, ".") || !*p) p = cwd; /* keep rendered paths free of "/." */
    if (vt_path_join(out, VT_SLURM_PATH_MAX, cwd, p, err))
        return vt_fail(err, VT_ERR_RANGE, "%s: %s: path too long", vt_config_name(cfg), key);
    return VT_OK;
}

static int is_identifier(const char *s) {
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return 0;
    return 1;
}

#define TRY(x)                   \
    do {                         \
        vt_status st_ = (x);     \
        if (st_) return st_;     \
    } while (0)

vt_status vt_slurm_job_load(const vt_config *cfg, vt_slurm_kind kind, const char *run_path,
                            const char *cwd, const char *self, vt_slurm_job *job, vt_error *err) {
    const char *name = vt_config_name(cfg);
    memset(job, 0, sizeof *job);
    job->kind = kind;
    job->job_name = default_job_names[kind];
    job->time = kind == VT_SLURM_EVAL ? "01:00:00" : "04:00:00";
    job->mpi = "pmix";
    job->begin = "02:00";
    job->nodes = 1;
    job->cpus_per_task = 1;
    job->signal_seconds = 300;
    job->eval_array = 4;
    job->nightly_train = true;
    job->chain = true;

    TRY(sbatch_word(cfg, "slurm.job_name", &job->job_name, err));
    TRY(sbatch_word(cfg, "slurm.partition", &job->partition, err));
    TRY(sbatch_word(cfg, "slurm.account", &job->account, err));
    TRY(sbatch_word(cfg, "slurm.qos", &job->qos, err));
    TRY(sbatch_word(cfg, "slurm.mem_per_cpu", &job->mem_per_cpu, err));
    TRY(time_value(cfg, "slurm.time", &job->time, err));
    TRY(vt_config_int_range(cfg, "slurm.nodes", 1, 100000, &job->nodes, err));
    TRY(vt_config_int_range(cfg, "slurm.gpus_per_node", 0, 64, &job->gpus_per_node, err));
    job->trainers_per_node = job->gpus_per_node > 0 ? job->gpus_per_node : 1;
    TRY(vt_config_int_range(cfg, "slurm.trainers_per_node", 1, 1024, &job->trainers_per_node, err));
    /* Loader ranks are the run's own choice (stream.loaders_per_node, read by
     * `vistune train`); the job only has to start that many more tasks. */
    TRY(vt_config_int_range(cfg, "stream.loaders_per_node", 0, 1024, &job->loaders_per_node, err));
    int64_t stream_loaders = job->loaders_per_node;
    TRY(vt_config_int_range(cfg, "slurm.loaders_per_node", 0, 1024, &job->loaders_per_node, err));
    if (vt_config_has(cfg, "stream.loaders_per_node") && job->loaders_per_node != stream_loaders)
        return vt_fail(err, VT_ERR_ARG,
                       "%s: slurm.loaders_per_node (%lld) differs from stream.loaders_per_node (%lld), which "
                       "decides the ranks' roles; drop the slurm key or make them equal",
                       name, (long long)job->loaders_per_node, (long long)stream_loaders);
    TRY(vt_config_int_range(cfg, "slurm.cpus_per_task", 1, 4096, &job->cpus_per_task, err));
    TRY(vt_config_int_range(cfg, "slurm.signal_seconds", 10, 3600, &job->signal_seconds, err));
    /* The warning must come after start-up, not at it: a job shorter than
     * the warning period would be told to checkpoint the moment it starts. */
    if (kind == VT_SLURM_TRAIN && job->signal_seconds >= slurm_time_seconds(job->time))
        return vt_fail(err, VT_ERR_ARG,
                       "%s: slurm.signal_seconds (%lld) must be less than slurm.time ('%s' = %ld s), or the "
                       "time-limit warning comes as the job starts",
                       name, (long long)job->signal_seconds, job->time, slurm_time_seconds(job->time));
    TRY(sbatch_word(cfg, "slurm.mpi", &job->mpi, err));
    TRY(string_list(cfg, "slurm.modules", job->modules, &job->nmodules, err));
    TRY(string_list(cfg, "slurm.sbatch_args", job->sbatch_args, &job->nsbatch_args, err));
    TRY(string_list(cfg, "slurm.train_args", job->train_args, &job->ntrain_args, err));
    TRY(string_list(cfg, "slurm.eval.args", job->eval_args, &job->neval_args, err));
    TRY(vt_config_string(cfg, "slurm.template", &job->template_path, err));
    for (int i = 0; i < job->nsbatch_args; i++)
        if (strncmp(job->sbatch_args[i], "--", 2) || !vt_sbatch_safe(job->sbatch_args[i]))
            return vt_fail(err, VT_ERR_ARG,
                           "%s: slurm.sbatch_args[%d]: '%s' must be one '--option=value' word "
                           "without spaces or quotes",
                           name, i, job->sbatch_args[i]);

    int nenv = vt_config_len(cfg, "slurm.env", err);
    if (nenv == -2) return err ? err->code : VT_ERR_FORMAT;
    if (nenv > VT_SLURM_MAX_LIST)
        return vt_fail(err, VT_ERR_RANGE, "%s: slurm.env: at most %d variables", name, VT_SLURM_MAX_LIST);
    for (int i = 0; i < nenv; i++) {
        const char *k = vt_config_key_at(cfg, "slurm.env", i);
        if (!k)
            return vt_fail(err, VT_ERR_ARG, "%s: slurm.env must be a mapping NAME: value", name);
        if (!is_identifier(k))
            return vt_fail(err, VT_ERR_ARG, "%s: slurm.env: '%s' is not a valid variable name", name, k);
        char key[256];
        snprintf(key, sizeof key, "slurm.env.%s", k);
        job->env_keys[job->nenv] = k;
        TRY(vt_config_require_string(cfg, key, &job->env_values[job->nenv], err));
        job->nenv++;
    }

    TRY(vt_config_int_range(cfg, "slurm.eval.array", 1, 100000, &job->eval_array, err));
    TRY(vt_config_int_range(cfg, "slurm.eval.max_parallel", 0, 100000, &job->eval_max_parallel, err));
    job->eval_gpus = job->gpus_per_node > 0 ? 1 : 0;
    TRY(vt_config_int_range(cfg, "slurm.eval.gpus", 0, 64, &job->eval_gpus, err));
    if (kind == VT_SLURM_EVAL) TRY(time_value(cfg, "slurm.eval.time", &job->time, err));
    else if (vt_config_has(cfg, "slurm.eval.time")) {
        const char *unused;
        TRY(time_value(cfg, "slurm.eval.time", &unused, err));
    }
    TRY(vt_config_string(cfg, "slurm.nightly.begin", &job->begin, err));
    if (!vt_sbatch_safe(job->begin))
        return vt_fail(err, VT_ERR_ARG, "%s: slurm.nightly.begin: '%s' is not a Slurm --begin time",
                       name, job->begin);
    TRY(vt_config_bool(cfg, "slurm.nightly.train", &job->nightly_train, err));
    if (kind == VT_SLURM_NIGHTLY) TRY(time_value(cfg, "slurm.nightly.time", &job->time, err));
    else if (vt_config_has(cfg, "slurm.nightly.time")) {
        const char *unused;
        TRY(time_value(cfg, "slurm.nightly.time", &unused, err));
    }

    const char *workdir = ".", *log_dir = "logs", *vistune = self, *nightly_dir = "nightly",
               *baseline = NULL;
    TRY(vt_config_string(cfg, "slurm.workdir", &workdir, err));
    TRY(vt_config_string(cfg, "slurm.log_dir", &log_dir, err));
    TRY(vt_config_string(cfg, "slurm.vistune", &vistune, err));
    TRY(vt_config_string(cfg, "slurm.nightly.dir", &nightly_dir, err));
    TRY(vt_config_string(cfg, "slurm.nightly.baseline", &baseline, err));
    TRY(abs_path(cwd, workdir, job->workdir, "slurm.workdir", cfg, err));
    TRY(abs_path(job->workdir, log_dir, job->log_dir, "slurm.log_dir", cfg, err));
    TRY(abs_path(cwd, vistune, job->vistune, "slurm.vistune", cfg, err));
    TRY(abs_path(cwd, run_path, job->run_config, "run config", cfg, err));
    TRY(abs_path(job->workdir, nightly_dir, job->nightly_dir, "slurm.nightly.dir", cfg, err));
    if (baseline) TRY(abs_path(job->workdir, baseline, job->baseline, "slurm.nightly.baseline", cfg, err));
    if (!vt_sbatch_safe(job->log_dir))
        return vt_fail(err, VT_ERR_ARG,
                       "%s: slurm.log_dir: '%s' cannot appear in #SBATCH --output (spaces or quotes)",
                       name, job->log_dir);
    char file[256];
    snprintf(file, sizeof file, "%s.sbatch", job->job_name);
    TRY(abs_path(job->log_dir, file, job->script, "slurm.log_dir", cfg, err));
    snprintf(file, sizeof file, "%s.stop", job->job_name);
    TRY(abs_path(job->log_dir, file, job->stop_file, "slurm.log_dir", cfg, err));
    return VT_OK;
}

/* Growing text for the generated blocks. */
typedef struct text {
    char *p;
    size_t len, cap;
    int oom;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
    if (t->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Adds ' ARG' for each shell-quoted item. */
static void add_quoted(text *t, const char *const *items, int n) {
    for (int i = 0; i < n; i++) {
        char *q = vt_shell_quote(items[i]);
        if (!q) {
            t->oom = 1;
            return;
        }
        add(t, "%s%s", t->len ? " " : "", q);
        free(q);
    }
}

enum { NVARS = 24 };

vt_status vt_slurm_render(const vt_slurm_job *job, const char *tmpl, const char *tmpl_name,
                          char **script, vt_error *err) {
    text lines = {0}, setup = {0}, train_args = {0}, eval_args = {0};
    enum { NQ = 9 };
    char *q[NQ] = {0};
    const char *raw[NQ] = {job->workdir,   job->vistune, job->run_config,  job->script,  job->stop_file,
                           job->begin,     job->mpi,     job->nightly_dir, job->baseline};
    vt_status st = VT_OK;
    for (int i = 0; i < NQ; i++)
        if (!(q[i] = vt_shell_quote(raw[i]))) lines.oom = 1;

    if (job->partition) add(&lines, "#SBATCH --partition=%s\n", job->partition);
    if (job->account) add(&lines, "#SBATCH --account=%s\n", job->account);
    if (job->qos) add(&lines, "#SBATCH --qos=%s\n", job->qos);
    if (job->mem_per_cpu) add(&lines, "#SBATCH --mem-per-cpu=%s\n", job->mem_per_cpu);
    if (job->kind == VT_SLURM_EVAL) {
        if (job->eval_gpus > 0) add(&lines, "#SBATCH --gpus-per-task=%lld\n", (long long)job->eval_gpus);
    } else if (job->gpus_per_node > 0) {
        /* Per node, not per task: loader ranks share the node's GPUs and each
         * trainer picks local_rank % visible devices. */
        add(&lines, "#SBATCH --gpus-per-node=%lld\n", (long long)job->gpus_per_node);
    }
    for (int i = 0; i < job->nsbatch_args; i++) add(&lines, "#SBATCH %s\n", job->sbatch_args[i]);
    if (lines.len && lines.p[lines.len - 1] == '\n') lines.p[--lines.len] = '\0';
    if (!lines.p) add(&lines, "%s", "");

    if (job->nmodules) {
        add(&setup, "module load");
        for (int i = 0; i < job->nmodules; i++) {
            char *m = vt_shell_quote(job->modules[i]);
            if (!m) {
                setup.oom = 1;
                break;
            }
            add(&setup, " %s", m);
            free(m);
        }
        add(&setup, " || exit 1\n");
    }
    for (int i = 0; i < job->nenv; i++) {
        char *v = vt_shell_quote(job->env_values[i]);
        if (!v) {
            setup.oom = 1;
            break;
        }
        add(&setup, "export %s=%s\n", job->env_keys[i], v);
        free(v);
    }
    if (setup.len && setup.p[setup.len - 1] == '\n') setup.p[--setup.len] = '\0';
    if (!setup.p) add(&setup, "%s", "");
    add_quoted(&train_args, job->train_args, job->ntrain_args);
    if (!train_args.p) add(&train_args, "%s", "");
    add_quoted(&eval_args, job->eval_args, job->neval_args);
    if (!eval_args.p) add(&eval_args, "%s", "");

    char nodes[32], tpn[32], cpt[32], sig[32], last[32], throttle[32];
    snprintf(nodes, sizeof nodes, "%lld", (long long)job->nodes);
    snprintf(tpn, sizeof tpn, "%lld", (long long)(job->trainers_per_node + job->loaders_per_node));
    snprintf(cpt, sizeof cpt, "%lld", (long long)job->cpus_per_task);
    snprintf(sig, sizeof sig, "%lld", (long long)job->signal_seconds);
    snprintf(last, sizeof last, "%lld", (long long)(job->eval_array - 1));
    throttle[0] = '\0';
    if (job->eval_max_parallel > 0)
        snprintf(throttle, sizeof throttle, "%%%lld", (long long)job->eval_max_parallel);

    if (lines.oom || setup.oom || train_args.oom || eval_args.oom) {
        st = vt_fail(err, VT_ERR_NOMEM, "out of memory while rendering %s", tmpl_name);
        goto done;
    }
    const vt_template_var vars[NVARS] = {
        {"job_name", job->job_name},
        {"nodes", nodes},
        {"tasks_per_node", tpn},
        {"cpus_per_task", cpt},
        {"time", job->time},
        {"signal_seconds", sig},
        {"log_dir", job->log_dir},
        {"sbatch_lines", lines.p},
        {"setup", setup.p},
        {"workdir", q[0]},
        {"vistune", q[1]},
        {"run_config", q[2]},
        {"script", q[3]},
        {"stop_file", q[4]},
        {"begin", q[5]},
        {"mpi", q[6]},
        {"nightly_dir", q[7]},
        {"baseline", q[8]},
        {"train_args", train_args.p},
        {"eval_args", eval_args.p},
        {"array_last", last},
        {"array_throttle", throttle},
        {"chain", job->chain ? "yes" : "no"},
        {"nightly_train", job->nightly_train ? "yes" : "no"},
    };
    st = vt_template_render(tmpl, tmpl_name, vars, NVARS, script, err);
done:
    for (int i = 0; i < NQ; i++) free(q[i]);
    free(lines.p);
    free(setup.p);
    free(train_args.p);
    free(eval_args.p);
    return st;
}
