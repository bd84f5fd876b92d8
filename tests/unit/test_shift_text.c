/* Every text-bearing shift of the catalog over a batch of instructions:
 * deterministic per seed, different items differ, no severity leaves an
 * instruction unchanged, mean edit distance never falls with severity, and
 * the protected tokens (option labels, numbers, quoted strings, <image>)
 * survive every shift in order. Plus WordNet lookups and bad inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/fs.h"
#include "pipeline/shift.h"
#include "pipeline/wordnet.h"

#define WORDNET "/usr/share/wordnet"

typedef struct instr {
    const char *text;
    const char *protected_tokens[8]; /* must appear in the output, in this order */
} instr;

/* 20+ words each, so n = ceil(rate * words) grows at every severity. */
static const instr BATCH[] = {
    {"<image>\nWhat is the color of the large umbrella held by the woman standing near the old fountain in the "
     "middle of the busy town square? A. red B. blue C. green D. yellow",
     {"<image>", "A.", "B.", "C.", "D."}},
    {"<image>\nHow many people are sitting on the wooden bench beside the river while the small brown dog sleeps "
     "quietly under the tree? Answer with a number.",
     {"<image>"}},
    {"Look at the picture carefully and describe what the children are doing in the garden behind the white house "
     "during the sunny afternoon, mentioning \"red kite\" if you see it.",
     {"\"red kite\""}},
    {"<image>\nIs the traffic light showing 'stop' for the cars waiting at the crossing near the bakery on the corner "
     "of the narrow street? (A) yes (B) no",
     {"<image>", "'stop'", "(A)", "(B)"}},
    {"The chart shows 3 bars and 2.5 percent growth over the last quarter; explain which product line grew fastest "
     "and why the analysts expected this result at the beginning of the year.",
     {"3", "2.5"}},
    {"<image>\nWhich animal is closest to the camera in this photograph taken at the zoo during the early morning "
     "feeding time when the keepers arrive? A) lion B) zebra C) giraffe",
     {"<image>", "A)", "B)", "C)"}},
    {"Please read the sign above the entrance of the museum and tell me the opening hours that are written there in "
     "large letters, then summarise the information about 12 special exhibitions.",
     {"12"}},
    {"<image>\nDescribe the weather conditions visible in this landscape photograph, including the clouds, the "
     "light on the mountains and any signs of rain or snow on the distant hills.",
     {"<image>"}},
    {"Answer the question using a single word or phrase: what kind of vehicle is parked next to the tall building "
     "with the green roof and the glass doors on the left side?",
     {NULL}},
    {"<image>\nCompare the two dishes on the table and explain which one contains more vegetables, considering the "
     "colors, the portion sizes and the sauces served with each meal. Options: A. left B. right",
     {"<image>", "A.", "B."}},
};
enum { NB = sizeof BATCH / sizeof BATCH[0] };

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    size_t *prev = malloc((lb + 1) * sizeof *prev), *cur = malloc((lb + 1) * sizeof *cur);
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t s = prev[j - 1] + (a[i - 1] != b[j - 1]), d = prev[j] + 1, n = cur[j - 1] + 1;
            cur[j] = s < d ? (s < n ? s : n) : (d < n ? d : n);
        }
        size_t *t = prev;
        prev = cur, cur = t;
    }
    size_t r = prev[lb];
    free(prev), free(cur);
    return r;
}

static int have_wordnet(void) { return vt_path_exists(WORDNET "/index.noun"); }

static vt_shift_env *env;

static int setup(void **state) {
    (void)state;
    vt_error err;
    return vt_shift_env_open(&env, WORDNET, &err) == VT_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    vt_shift_env_close(env);
    return 0;
}

static void test_every_text_shift(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < vt_shift_count(); i++) {
        const vt_shift *s = vt_shift_at(i);
        if (!s->text) continue;
        if (strstr(s->params, "WordNet") && !have_wordnet()) {
            printf("# %s: skipped, no WordNet at %s\n", s->name, WORDNET);
            continue;
        }
        double mean[5];
        int differs = 0;
        for (int sev = 1; sev <= 5; sev++) {
            mean[sev - 1] = 0;
            for (int b = 0; b < NB; b++) {
                vt_error err;
                char *out = NULL, *again = NULL, *other = NULL;
                uint64_t seed = vt_shift_seed((uint64_t)b, s, sev);
                assert_int_equal(vt_shift_apply_text(s, sev, seed, env, BATCH[b].text, &out, &err), VT_OK);
                assert_int_equal(vt_shift_apply_text(s, sev, seed, env, BATCH[b].text, &again, &err), VT_OK);
                assert_string_equal(out, again);
                assert_int_equal(
                    vt_shift_apply_text(s, sev, vt_shift_seed((uint64_t)b + 100, s, sev), env, BATCH[b].text, &other,
                                        &err),
                    VT_OK);
                differs |= strcmp(out, other) != 0;
                if (!strcmp(out, BATCH[b].text)) printf("# %s s%d item %d unchanged\n", s->name, sev, b), failures++;
                const char *at = out;
                for (int k = 0; k < 8 && BATCH[b].protected_tokens[k]; k++) {
                    const char *f = strstr(at, BATCH[b].protected_tokens[k]);
                    if (!f) {
                        printf("# %s s%d item %d lost protected '%s':\n#   %s\n", s->name, sev, b,
                               BATCH[b].protected_tokens[k], out);
                        failures++;
                        break;
                    }
                    at = f + strlen(BATCH[b].protected_tokens[k]);
                }
                mean[sev - 1] += (double)edit_distance(BATCH[b].text, out) / NB;
                if (b == 0 && sev == 5) printf("# %-22s s5: %.110s\n", s->name, out);
                free(out), free(again), free(other);
            }
        }
        printf("# %-22s edit distance %6.1f %6.1f %6.1f %6.1f %6.1f\n", s->name, mean[0], mean[1], mean[2], mean[3],
               mean[4]);
        if (!differs) printf("# %s: every item gives the same output\n", s->name), failures++;
        for (int sev = 1; sev < 5; sev++)
            if (mean[sev] < mean[sev - 1]) printf("# %s: edit distance falls s%d -> s%d\n", s->name, sev, sev + 1), failures++;
    }
    assert_int_equal(failures, 0);
}

/* Everything protected, under the shift that touches every word. */
static void test_protected_tokens(void **state) {
    (void)state;
    static const char *in =
        "<image> Which one? (A) red car A. blue B) green C: tall 3.5 km, 1,000 people, 10% \"keep this text\" "
        "'and this' [d] the end";
    const vt_shift *s;
    vt_error err;
    char *out;
    assert_int_equal(vt_shift_find("case_change", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_text(s, 5, 7, env, in, &out, &err), VT_OK);
    static const char *keep[] = {"<image>", "(A)", "A.", "B)", "C:", "3.5", "1,000", "10%", "\"keep this text\"",
                                 "'and this'", "[d]", NULL};
    const char *at = out;
    for (int k = 0; keep[k]; k++) {
        const char *f = strstr(at, keep[k]);
        if (!f) fail_msg("lost '%s' in '%s'", keep[k], out);
        at = f + strlen(keep[k]);
    }
    assert_string_not_equal(out, in);
    free(out);
    /* nothing editable: the text comes back unchanged */
    assert_int_equal(vt_shift_apply_text(s, 5, 7, env, "A. 3 (B) 4.5", &out, &err), VT_OK);
    assert_string_equal(out, "A. 3 (B) 4.5");
    free(out);
}

/* Word swaps and deletions stay inside segments: options keep their text
 * and never trade places across labels. */
static void test_options_keep_their_text(void **state) {
    (void)state;
    static const char *in = "Pick the best answer for the question about the picture shown here on the screen "
                            "today please. A. red B. blue C. green";
    static const char *names[] = {"word_swap", "word_delete", NULL};
    for (int k = 0; names[k]; k++) {
        const vt_shift *s;
        vt_error err;
        assert_int_equal(vt_shift_find(names[k], &s, &err), VT_OK);
        for (uint64_t item = 0; item < 30; item++) {
            char *out;
            assert_int_equal(vt_shift_apply_text(s, 5, vt_shift_seed(item, s, 5), env, in, &out, &err), VT_OK);
            if (!strstr(out, "A. red B. blue C. green")) fail_msg("%s: options changed: %s", names[k], out);
            free(out);
        }
    }
}

/* The evaluation hook shifts image and question of one item like the two
 * apply calls with vt_shift_seed(index, ...) would. */
static void test_hook(void **state) {
    (void)state;
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("joint_noise_keyboard", &s, &err), VT_OK);
    vt_shift_hook_ctx ctx = {s, 4, env};
    enum { HW = 16, HN = HW * HW * 3 };
    uint8_t img[HN], want[HN];
    for (int i = 0; i < HN; i++) img[i] = (uint8_t)(i * 7);
    uint64_t seed = vt_shift_seed(99, s, 4);
    assert_int_equal(vt_shift_apply_image(s, 4, seed, img, HW, HW, want, &err), VT_OK);
    char *q = strdup(BATCH[0].text), *wantq;
    assert_int_equal(vt_shift_apply_text(s, 4, seed, env, q, &wantq, &err), VT_OK);
    assert_int_equal(vt_shift_hook(&ctx, 99, img, HW, HW, &q, &err), VT_OK);
    assert_memory_equal(img, want, HN);
    assert_string_equal(q, wantq);
    free(q), free(wantq);
    ctx.severity = 7;
    assert_int_equal(vt_shift_hook(&ctx, 5, NULL, 0, 0, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "item 5"));
}

/* An image-only shift returns the text unchanged. */
static void test_image_shift_copies_text(void **state) {
    (void)state;
    const vt_shift *s;
    vt_error err;
    char *out;
    assert_int_equal(vt_shift_find("fog", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_text(s, 3, 1, NULL, "hello world", &out, &err), VT_OK);
    assert_string_equal(out, "hello world");
    free(out);
}

static void test_wordnet_lookup(void **state) {
    (void)state;
    if (!have_wordnet()) skip();
    vt_wordnet *wn;
    vt_error err;
    assert_int_equal(vt_wordnet_open(WORDNET, &wn, &err), VT_OK);
    assert_true(vt_wordnet_lemma_count(wn) > 140000); /* WordNet 3.0: 147306 index lines */
    char **l;
    size_t n;
    assert_int_equal(vt_wordnet_synonyms(wn, "picture", &l, &n, &err), VT_OK);
    int image = 0, self = 0;
    for (size_t i = 0; i < n; i++) image |= !strcmp(l[i], "image"), self |= !strcmp(l[i], "picture");
    assert_true(image && !self);
    assert_null(l[n]);
    vt_wordnet_list_free(l);
    assert_int_equal(vt_wordnet_synonyms(wn, "Pictures", &l, &n, &err), VT_OK); /* case + morphology */
    image = 0;
    for (size_t i = 0; i < n; i++) image |= !strcmp(l[i], "image"), self |= !strcmp(l[i], "picture");
    assert_true(image && !self);
    vt_wordnet_list_free(l);
    assert_int_equal(vt_wordnet_synonyms(wn, "large", &l, &n, &err), VT_OK); /* adjective markers stripped */
    int big = 0;
    for (size_t i = 0; i < n; i++) big |= !strcmp(l[i], "big"), assert_null(strchr(l[i], '('));
    assert_true(big);
    vt_wordnet_list_free(l);
    assert_int_equal(vt_wordnet_synonyms(wn, "qzxqzx", &l, &n, &err), VT_OK);
    assert_int_equal(n, 0);
    vt_wordnet_list_free(l);
    vt_wordnet_close(wn);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_wordnet_bad_inputs(void **state) {
    (void)state;
    const char *tmp = getenv("VT_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/wn-bad", tmp ? tmp : "/tmp");
    vt_error err;
    vt_remove_tree(dir, &err);
    assert_int_equal(vt_mkdir_p(dir, &err), VT_OK);
    vt_wordnet *wn;
    /* missing files: IO error naming the file and the package */
    assert_int_equal(vt_wordnet_open(dir, &wn, &err), VT_ERR_IO);
    assert_non_null(strstr(err.msg, "index.noun"));
    assert_non_null(strstr(err.msg, "wordnet-base"));
    /* a synonym shift through an env pointing there fails the same way, every time */
    vt_shift_env *bad;
    assert_int_equal(vt_shift_env_open(&bad, dir, &err), VT_OK);
    const vt_shift *s;
    assert_int_equal(vt_shift_find("synonym_replace", &s, &err), VT_OK);
    char *out;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(vt_shift_apply_text(s, 1, 1, bad, "a nice picture of a cat", &out, &err), VT_ERR_IO);
        assert_null(out);
        assert_non_null(strstr(err.msg, "synonym_replace"));
    }
    vt_shift_env_close(bad);
    /* no env at all */
    assert_int_equal(vt_shift_apply_text(s, 1, 1, NULL, "a nice picture of a cat", &out, &err), VT_ERR_ARG);
    /* an index pointing past the end of the data file: a format error naming the file */
    const char *pos[] = {"noun", "verb", "adj", "adv"};
    for (int p = 0; p < 4; p++) {
        char name[32];
        snprintf(name, sizeof name, "index.%s", pos[p]);
        write_text(dir, name, "  1 licence line\npicture n 1 0 1 0 99999999  \n");
        snprintf(name, sizeof name, "data.%s", pos[p]);
        write_text(dir, name, "  1 licence line\n");
    }
    assert_int_equal(vt_wordnet_open(dir, &wn, &err), VT_OK);
    char **l;
    size_t n;
    assert_int_equal(vt_wordnet_synonyms(wn, "picture", &l, &n, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "data.noun"));
    assert_null(l);
    vt_wordnet_close(wn);
    /* an index line without fields */
    write_text(dir, "index.noun", "  1 licence\nbroken\n");
    assert_int_equal(vt_wordnet_open(dir, &wn, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2"));
    vt_remove_tree(dir, &err);
}

static void test_text_bad_inputs(void **state) {
    (void)state;
    const vt_shift *s;
    vt_error err;
    char *out;
    assert_int_equal(vt_shift_find("keyboard", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_text(s, 0, 1, env, "hello there", &out, &err), VT_ERR_RANGE);
    assert_int_equal(vt_shift_apply_text(s, 1, 1, env, NULL, &out, &err), VT_ERR_ARG);
    size_t big = (size_t)VT_SHIFT_MAX_TEXT + 10;
    char *t = malloc(big + 1);
    memset(t, 'a', big);
    t[big] = 0;
    assert_int_equal(vt_shift_apply_text(s, 1, 1, env, t, &out, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "byte limit"));
    free(t);
    /* empty text is fine and stays empty */
    assert_int_equal(vt_shift_apply_text(s, 3, 1, env, "", &out, &err), VT_OK);
    assert_string_equal(out, "");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_text_shift),   cmocka_unit_test(test_protected_tokens),
        cmocka_unit_test(test_options_keep_their_text), cmocka_unit_test(test_hook),
        cmocka_unit_test(test_image_shift_copies_text), cmocka_unit_test(test_wordnet_lookup),
        cmocka_unit_test(test_wordnet_bad_inputs), cmocka_unit_test(test_text_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
