/* `vistune submit`: run config -> rendered batch script -> `sbatch --test-only`
 * -> `sbatch --parsable`. sbatch is run with an argument vector, never through
 * a shell, so nothing from the config is evaluated on the submitting host. */
#include "scheduler/submit.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "scheduler/slurm_job.h"

enum { OUT_CAP = 8192, MAX_SETS = 64 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune submit train|eval|nightly RUN.yaml [options]\n"
            "Renders deploy/slurm/<kind>.sbatch from the run config's slurm: section,\n"
            "validates it with `sbatch --test-only`, submits it and prints the job id.\n\n"
            "  --dry-run          print the rendered script; run nothing\n"
            "  --check            render and validate with sbatch --test-only; submit nothing\n"
            "  --after JOBID      start after JOBID succeeded (afterok, --kill-on-invalid-dep=yes)\n"
            "  --now              nightly: first run now, not at slurm.nightly.begin\n"
            "  --no-chain         nightly: do not resubmit for the next night (scrontab sites)\n"
            "  --set KEY=VALUE    override a config value (repeatable)\n"
            "  -h, --help         this text\n");
}

/* Runs argv (no shell), feeding `input` on stdin when given, and collects
 * stdout+stderr into out. Returns the exit status, or -1 with err filled. */
static int run_capture(char *const argv[], const char *input, char *out, size_t cap, vt_error *err) {
    int in[2], res[2];
    if (pipe(in)) return vt_fail_errno(err, VT_ERR_IO, "pipe"), -1;
    if (pipe(res)) {
        close(in[0]);
        close(in[1]);
        return vt_fail_errno(err, VT_ERR_IO, "pipe"), -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(res[0]), close(res[1]);
        return vt_fail_errno(err, VT_ERR_IO, "fork"), -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(res[1], 1);
        dup2(res[1], 2);
        close(in[0]), close(in[1]), close(res[0]), close(res[1]);
        if (!input) close(0);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(res[1]);
    if (input) {
        size_t len = strlen(input), off = 0;
        while (off < len) {
            ssize_t n = write(in[1], input + off, len - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += (size_t)n;
        }
    }
    close(in[1]);
    size_t len = 0;
    for (;;) {
        char tmp[1024];
        ssize_t n = read(res[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    out[len] = '\0';
    close(res[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return vt_fail_errno(err, VT_ERR_IO, "waitpid"), -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The last non-empty line of text, trimmed, for one-line error messages. */
static const char *last_line(char *text) {
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

static int fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "vistune submit: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

int vt_cmd_submit(int argc, char **argv) {
    static const struct option opts[] = {{"dry-run", no_argument, NULL, 'd'},
                                         {"check", no_argument, NULL, 'c'},
                                         {"after", required_argument, NULL, 'a'},
                                         {"now", no_argument, NULL, 'N'},
                                         {"no-chain", no_argument, NULL, 'C'},
                                         {"set", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    int dry = 0, check = 0, now = 0, no_chain = 0, nsets = 0, c;
    const char *after = NULL, *sets[MAX_SETS];
    optind = 1;
    opterr = 0; /* one line of our own instead of getopt's */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dry = 1; break;
        case 'c': check = 1; break;
        case 'a': after = optarg; break;
        case 'N': now = 1; break;
        case 'C': no_chain = 1; break;
        case 's':
            if (nsets == MAX_SETS) {
                fprintf(stderr, "vistune submit: at most %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune submit: unknown or incomplete option '%s' (see vistune submit --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "vistune submit: expected a job kind (train, eval, nightly) and RUN.yaml "
                        "(see vistune submit --help)\n");
        return 2;
    }
    int kind = vt_slurm_kind_parse(argv[optind]);
    if (kind < 0) {
        fprintf(stderr, "vistune submit: unknown job kind '%s' (expected train, eval or nightly)\n",
                argv[optind]);
        return 2;
    }
    if (after) {
        for (const char *p = after; *p; p++)
            if (!((*p >= '0' && *p <= '9') || *p == '_')) {
                fprintf(stderr, "vistune submit: --after '%s': expected a job id\n", after);
                return 2;
            }
        if (!*after) return fprintf(stderr, "vistune submit: --after: empty job id\n"), 2;
    }
    const char *run_path = argv[optind + 1];

    vt_error err = {0};
    vt_config *cfg = NULL;
    if (vt_config_load(run_path, &cfg, &err)) return fail("%s%s", err.msg, "");
    for (int i = 0; i < nsets; i++)
        if (vt_config_set(cfg, sets[i], &err)) {
            vt_config_free(cfg);
            return fail("%s%s", err.msg, "");
        }

    char cwd[PATH_MAX], self[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
        vt_config_free(cfg);
        return fail("cannot read the current directory: %s%s", strerror(errno), "");
    }
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) snprintf(self, sizeof self, "vistune");
    else self[sl] = '\0';

    vt_slurm_job job;
    char *tmpl_text = NULL, *script = NULL;
    int rc = 1;
    if (vt_slurm_job_load(cfg, (vt_slurm_kind)kind, run_path, cwd, self, &job, &err)) {
        rc = fail("%s%s", err.msg, "");
        goto out;
    }
    if (no_chain) job.chain = false;
    /* The rest of the run config belongs to train/eval; they check it. */
    for (int i = 0;; i++) {
        const char *k = vt_config_key_at(cfg, "", i);
        if (!k) break;
        if (strcmp(k, "slurm")) vt_config_mark_used(cfg, k);
    }
    if (vt_config_check_unused(cfg, &err)) {
        rc = fail("%s%s", err.msg, "");
        goto out;
    }
    const char *tmpl = vt_slurm_builtin_template((vt_slurm_kind)kind);
    char tmpl_name[VT_SLURM_PATH_MAX + 16];
    snprintf(tmpl_name, sizeof tmpl_name, "%s.sbatch (built in)", vt_slurm_kind_name((vt_slurm_kind)kind));
    if (job.template_path) {
        char path[VT_SLURM_PATH_MAX];
        size_t len;
        if (vt_path_join(path, sizeof path, cwd, job.template_path, &err) ||
            vt_read_file(path, 1 << 20, &tmpl_text, &len, &err)) {
            rc = fail("slurm.template: %s%s", err.msg, "");
            goto out;
        }
        tmpl = tmpl_text;
        snprintf(tmpl_name, sizeof tmpl_name, "%s", path);
    }
    if (vt_slurm_render(&job, tmpl, tmpl_name, &script, &err)) {
        rc = fail("%s%s", err.msg, "");
        goto out;
    }
    if (dry) {
        fputs(script, stdout);
        rc = 0;
        goto out;
    }

    char output[OUT_CAP];
    char dep[64] = "", begin[160] = "";
    if (after) snprintf(dep, sizeof dep, "--dependency=afterok:%s", after);
    if (kind == VT_SLURM_NIGHTLY && !now) snprintf(begin, sizeof begin, "--begin=%s", job.begin);
    char *test_argv[8];
    int ta = 0;
    test_argv[ta++] = "sbatch";
    test_argv[ta++] = "--test-only";
    if (check) {
        test_argv[ta] = NULL; /* script on stdin: --check writes no file */
    } else {
        /* The log dir must exist before sbatch opens --output in it; the
         * script is kept there (the nightly job resubmits that file). */
        if (vt_mkdir_p(job.log_dir, &err) ||
            vt_write_file_atomic(job.script, script, strlen(script), &err)) {
            rc = fail("%s%s", err.msg, "");
            goto out;
        }
        test_argv[ta++] = job.script;
        test_argv[ta] = NULL;
    }
    int st = run_capture(test_argv, check ? script : NULL, output, sizeof output, &err);
    if (st < 0) {
        rc = fail("%s%s", err.msg, "");
        goto out;
    }
    if (st == 127) {
        rc = fail("sbatch not found on PATH (load the site's Slurm module, or use --dry-run)%s%s", "", "");
        goto out;
    }
    if (st != 0) {
        rc = fail("sbatch --test-only rejected the %s job: %s", vt_slurm_kind_name((vt_slurm_kind)kind),
                  last_line(output));
        goto out;
    }
    if (check) {
        fprintf(stderr, "vistune submit: %s job is valid: %s\n", vt_slurm_kind_name((vt_slurm_kind)kind),
                last_line(output));
        rc = 0;
        goto out;
    }

    char *sub_argv[8];
    int sa = 0;
    sub_argv[sa++] = "sbatch";
    sub_argv[sa++] = "--parsable";
    if (after) {
        sub_argv[sa++] = dep;
        sub_argv[sa++] = "--kill-on-invalid-dep=yes";
    }
    if (begin[0]) sub_argv[sa++] = begin;
    sub_argv[sa++] = job.script;
    sub_argv[sa] = NULL;
    st = run_capture(sub_argv, NULL, output, sizeof output, &err);
    if (st != 0) {
        rc = fail("sbatch failed: %s%s", st < 0 ? err.msg : last_line(output), "");
        goto out;
    }
    /* --parsable prints "jobid" or "jobid;cluster" (after any warnings). */
    char *id = (char *)last_line(output);
    id[strcspn(id, ";")] = '\0';
    if (!*id || strspn(id, "0123456789") != strlen(id)) {
        rc = fail("sbatch printed no job id: '%s'%s", id, "");
        goto out;
    }
    printf("%s\n", id);
    fprintf(stderr, "vistune submit: %s job %s submitted (script %s, logs in %s)\n",
            vt_slurm_kind_name((vt_slurm_kind)kind), id, job.script, job.log_dir);
    rc = 0;
out:
    free(script);
    free(tmpl_text);
    vt_config_free(cfg);
    return rc;
}
