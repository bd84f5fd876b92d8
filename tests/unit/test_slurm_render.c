/* Slurm job rendering: placeholder substitution, shell quoting checked by a
 * real /bin/sh, the slurm: section's validation errors, and the rendered
 * headers for each job kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "scheduler/slurm_job.h"
#include "scheduler/slurm_template.h"

static void test_render_substitutes_and_rejects(void **state) {
    (void)state;
    vt_template_var vars[] = {{"a", "1"}, {"bb", "two words"}};
    char *out = NULL;
    vt_error err = {0};
    assert_int_equal(vt_template_render("x={{a}} y={{bb}}{{a}}\n$z {{ not}", "t", vars, 2, &out, &err),
                     VT_ERR_FORMAT);
    assert_null(out);
    assert_non_null(strstr(err.msg, "t:2: unterminated"));
    assert_int_equal(vt_template_render("x={{a}} y={{bb}}{{a}}\n$z {", "t", vars, 2, &out, &err), VT_OK);
    assert_string_equal(out, "x=1 y=two words1\n$z {");
    free(out);
    assert_int_equal(vt_template_render("ok\n\n#{{nope}}", "tmpl", vars, 2, &out, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "tmpl:3: unknown placeholder '{{nope}}'");
    assert_int_equal(vt_template_render("", "t", vars, 2, &out, &err), VT_OK);
    assert_string_equal(out, "");
    free(out);
}

/* The quoted form must come back unchanged through a real shell. */
static void test_shell_quote_round_trip(void **state) {
    (void)state;
    const char *cases[] = {"plain", "two words", "it's", "$(touch /tmp/vt-pwned)", "a\"b\\c`d`",
                           "'", "", "semi;colon && |pipe| *glob*", "new\nline"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = vt_shell_quote(cases[i]);
        assert_non_null(q);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "printf '%%s' %s", q);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char got[256] = "";
        size_t n = fread(got, 1, sizeof got - 1, p);
        got[n] = '\0';
        assert_int_equal(pclose(p), 0);
        assert_string_equal(got, cases[i]);
        free(q);
    }
}

static void test_sbatch_safe(void **state) {
    (void)state;
    assert_true(vt_sbatch_safe("gpu"));
    assert_true(vt_sbatch_safe("--constraint=a100|h100"));
    assert_true(vt_sbatch_safe("/scratch/run_1/logs"));
    assert_false(vt_sbatch_safe(""));
    assert_false(vt_sbatch_safe("two words"));
    assert_false(vt_sbatch_safe("tab\there"));
    assert_false(vt_sbatch_safe("line\n#SBATCH --x"));
    assert_false(vt_sbatch_safe("q'uote"));
    assert_false(vt_sbatch_safe("q\"uote"));
}

static vt_status load(const char *yaml, vt_slurm_kind kind, vt_slurm_job *job, vt_config **cfg,
                      vt_error *err) {
    assert_int_equal(vt_config_parse(yaml, strlen(yaml), "run.yaml", cfg, err), VT_OK);
    return vt_slurm_job_load(*cfg, kind, "cfg/run.yaml", "/work/exp", "/opt/vistune/bin/vistune", job,
                             err);
}

static void expect_error(const char *yaml, const char *msg) {
    vt_config *cfg = NULL;
    vt_slurm_job job;
    vt_error err = {0};
    assert_int_not_equal(load(yaml, VT_SLURM_TRAIN, &job, &cfg, &err), VT_OK);
    if (!strstr(err.msg, msg)) fail_msg("expected '%s' in '%s'", msg, err.msg);
    vt_config_free(cfg);
}

static void test_bad_values_name_the_key(void **state) {
    (void)state;
    expect_error("slurm:\n  time: 2 hours\n", "run.yaml: slurm.time: '2 hours' is not a Slurm time");
    expect_error("slurm:\n  partition: gpu a100\n", "slurm.partition: 'gpu a100' must be one word");
    expect_error("slurm:\n  nodes: 0\n", "slurm.nodes");
    expect_error("slurm:\n  gpus_per_node: many\n", "slurm.gpus_per_node");
    expect_error("slurm:\n  sbatch_args: [exclusive]\n", "slurm.sbatch_args[0]: 'exclusive'");
    expect_error("slurm:\n  sbatch_args: [\"--comment=a b\"]\n", "slurm.sbatch_args[0]");
    expect_error("slurm:\n  env: {1BAD: x}\n", "slurm.env: '1BAD' is not a valid variable name");
    expect_error("slurm:\n  env: [A, B]\n", "slurm.env must be a mapping");
    expect_error("slurm:\n  log_dir: my logs\n", "slurm.log_dir: '/work/exp/my logs' cannot appear");
    expect_error("slurm:\n  nightly: {begin: \"02:00 tomorrow\"}\n", "slurm.nightly.begin");
    expect_error("slurm:\n  signal_seconds: 1\n", "slurm.signal_seconds");
    expect_error("slurm:\n  time: \"1:2:3:4\"\n", "slurm.time: '1:2:3:4' is not a Slurm time");
    expect_error("slurm:\n  time: \"1-\"\n", "slurm.time: '1-' is not a Slurm time");
    expect_error("slurm:\n  time: \"0\"\n", "slurm.time: '0' is not a Slurm time");
    expect_error("slurm:\n  time: \"3\"\n",
                 "slurm.signal_seconds (300) must be less than slurm.time ('3' = 180 s)");
    expect_error("slurm:\n  time: \"1:00\"\n  signal_seconds: 60\n", "('1:00' = 60 s)");
    expect_error("slurm:\n  modules: openmpi\n", "slurm.modules");
    expect_error("stream:\n  loaders_per_node: 2\nslurm:\n  loaders_per_node: 1\n",
                 "slurm.loaders_per_node (1) differs from stream.loaders_per_node (2)");
}

static void test_slurm_time_forms(void **state) {
    (void)state;
    const char *ok[] = {"90", "5:30", "01:00:00", "2-12", "1-0:30", "1-00:00:10"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, "slurm:\n  time: \"%s\"\n  signal_seconds: 10\n", ok[i]);
        vt_config *cfg = NULL;
        vt_slurm_job job;
        vt_error err = {0};
        if (load(yaml, VT_SLURM_TRAIN, &job, &cfg, &err)) fail_msg("%s: %s", ok[i], err.msg);
        vt_config_free(cfg);
    }
}

static void test_loaders_follow_the_stream_section(void **state) {
    (void)state;
    vt_config *cfg = NULL;
    vt_slurm_job job;
    vt_error err = {0};
    if (load("stream:\n  loaders_per_node: 2\nslurm:\n  trainers_per_node: 3\n", VT_SLURM_TRAIN, &job, &cfg, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(job.loaders_per_node, 2);
    assert_int_equal(job.trainers_per_node, 3);
    vt_config_free(cfg);
}

static char *render(const char *yaml, vt_slurm_kind kind) {
    vt_config *cfg = NULL;
    vt_slurm_job job;
    vt_error err = {0};
    if (load(yaml, kind, &job, &cfg, &err)) fail_msg("%s", err.msg);
    char *script = NULL;
    if (vt_slurm_render(&job, vt_slurm_builtin_template(kind), "builtin", &script, &err))
        fail_msg("%s", err.msg);
    vt_config_free(cfg);
    return script;
}

static void has(const char *script, const char *line) {
    if (!strstr(script, line)) fail_msg("missing '%s' in:\n%s", line, script);
}

static void test_train_header(void **state) {
    (void)state;
    char *s = render("slurm:\n  nodes: 2\n  gpus_per_node: 4\n  loaders_per_node: 2\n  cpus_per_task: 8\n"
                     "  time: \"12:00:00\"\n  account: proj1\n  signal_seconds: 600\n"
                     "  modules: [openmpi/4.1, cuda/12]\n  train_args: [--set, \"a=b c\"]\n",
                     VT_SLURM_TRAIN);
    has(s, "#SBATCH --nodes=2\n");
    has(s, "#SBATCH --ntasks-per-node=6\n"); /* 4 trainers (one per GPU) + 2 loaders */
    has(s, "#SBATCH --cpus-per-task=8\n");
    has(s, "#SBATCH --gpus-per-node=4\n");
    has(s, "#SBATCH --signal=B:USR1@600\n");
    has(s, "#SBATCH --account=proj1\n");
    has(s, "#SBATCH --output=/work/exp/logs/%x-%j.out\n");
    has(s, "#SBATCH --kill-on-invalid-dep=yes\n");
    has(s, "module load 'openmpi/4.1' 'cuda/12' || exit 1\n");
    has(s, "srun --mpi='pmix' '/opt/vistune/bin/vistune' train '/work/exp/cfg/run.yaml' --resume auto --stop-file \"$stop_request\" "
           "'--set' 'a=b c' &\n");
    has(s, "scontrol requeue");
    has(s, "stop_request=\"/work/exp/logs/vistune-train-${SLURM_JOB_ID}.stop-request\"\n");
    assert_null(strstr(s, "{{"));
    assert_null(strstr(s, "--partition"));
    free(s);
}

static void test_eval_and_nightly(void **state) {
    (void)state;
    char *s = render("slurm:\n  gpus_per_node: 4\n  eval: {array: 16, max_parallel: 4, time: \"30\"}\n",
                     VT_SLURM_EVAL);
    has(s, "#SBATCH --array=0-15%4\n");
    has(s, "#SBATCH --gpus-per-task=1\n");
    has(s, "#SBATCH --time=30\n");
    has(s, "#SBATCH --output=/work/exp/logs/%x-%A_%a.out\n");
    free(s);
    s = render("slurm:\n  job_name: nightly-a\n  workdir: /scratch/x\n  nightly: {begin: tomorrow, train: no}\n",
               VT_SLURM_NIGHTLY);
    has(s, "begin='tomorrow'\n");
    has(s, "--dependency=singleton --kill-on-invalid-dep=yes '/scratch/x/logs/nightly-a.sbatch'");
    has(s, "! -e '/scratch/x/logs/nightly-a.stop'");
    has(s, "if [ no = yes ]; then\n");
    has(s, "#SBATCH --job-name=nightly-a\n");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_substitutes_and_rejects),
        cmocka_unit_test(test_shell_quote_round_trip),
        cmocka_unit_test(test_sbatch_safe),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_slurm_time_forms),
        cmocka_unit_test(test_loaders_follow_the_stream_section),
        cmocka_unit_test(test_train_header),
        cmocka_unit_test(test_eval_and_nightly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
