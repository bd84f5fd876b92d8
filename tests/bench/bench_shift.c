/* Shift catalog cost: milliseconds per call of every shift at one image size
 * (default 224x224, the built-in scene) and a 30-word instruction, best of
 * R repetitions, mean over severities 1..5. Prints a Markdown table.
 *   bench_shift [SIZE] [REPS]     (docs/shifts.md, "Measured figures") */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pipeline/shift.h"
#include "pipeline/shift_scene.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int side = argc > 1 ? atoi(argv[1]) : 224, reps = argc > 2 ? atoi(argv[2]) : 3;
    if (side < VT_SHIFT_MIN_SIDE || side > 4096 || reps < 1) {
        fprintf(stderr, "usage: bench_shift [SIZE 8..4096] [REPS >= 1]\n");
        return 2;
    }
    size_t n = (size_t)side * side * 3;
    uint8_t *clean = malloc(n), *out = malloc(n);
    if (!clean || !out) return 1;
    vt_shift_scene(clean, side, side, 7);
    vt_shift_env *env;
    vt_error err;
    if (vt_shift_env_open(&env, NULL, &err) != VT_OK) return 1;
    const char *q = "<image>\nWhat is the color of the large umbrella held by the woman standing near the old "
                    "fountain in the middle of the busy town square today? A. red B. blue C. green D. yellow";
    printf("| shift | ms per call (%dx%d image / text) |\n|---|---|\n", side, side);
    for (size_t i = 0; i < vt_shift_count(); i++) {
        const vt_shift *s = vt_shift_at(i);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int sev = 1; sev <= 5; sev++) {
                uint64_t seed = vt_shift_seed(1, s, sev);
                if (s->image && vt_shift_apply_image(s, sev, seed, clean, side, side, out, &err) != VT_OK) goto fail;
                if (s->text) {
                    char *t;
                    if (vt_shift_apply_text(s, sev, seed, env, q, &t, &err) != VT_OK) goto fail;
                    free(t);
                }
            }
            double dt = (now() - t0) / 5;
            best = dt < best ? dt : best;
        }
        printf("| %s | %.3f |\n", s->name, best * 1e3);
    }
    vt_shift_env_close(env);
    free(clean), free(out);
    return 0;
fail:
    fprintf(stderr, "bench_shift: %s\n", err.msg);
    return 1;
}
