/* The "shapes" generator. Each item draws its own random stream from
 * vt_hash4(seed, index, ...), so item i is the same whatever the count and
 * items can be made in any order. Shapes sit in distinct cells of a 3x3
 * grid (so "left of" and "top left" are unambiguous) and have distinct kinds
 * and distinct colours within a scene (so "the red object" names one). */
#include "pipeline/synth.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

enum { NCOLORS = 7, NKINDS = 5, MAX_SHAPES = 4 };

static const char *const COLOR_NAMES[NCOLORS] = {"red",    "green",  "blue", "yellow",
                                                 "purple", "orange", "black"};
static const uint8_t COLORS[NCOLORS][3] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220},
                                           {240, 210, 40}, {150, 60, 190}, {245, 140, 30},
                                           {30, 30, 30}};
static const char *const KIND_NAMES[NKINDS] = {"circle", "square", "triangle", "diamond", "cross"};
static const char *const ROW_NAMES[3] = {"top", "middle", "bottom"};
static const char *const COL_NAMES[3] = {"left", "center", "right"};
static const uint8_t BACKGROUND[3] = {235, 235, 235};

static const char *const TASK_NAMES[VT_SYNTH_NTASKS] = {
    "color", "shape", "count", "position", "exist", "small_color", "grid"};

const char *vt_synth_task_name(vt_synth_task t) {
    return (unsigned)t < VT_SYNTH_NTASKS ? TASK_NAMES[t] : "unknown";
}

typedef struct shape {
    int kind, color, cell; /* cell = row * 3 + col */
    double cx, cy, r;
} shape;

/* Is (dx, dy), relative to the centre, inside a shape of radius r? */
static int inside(int kind, double dx, double dy, double r) {
    switch (kind) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return fabs(dx) <= 0.85 * r && fabs(dy) <= 0.85 * r;
    case 2: return dy >= -r && dy <= 0.8 * r && fabs(dx) <= (dy + r) / 1.8;
    case 3: return fabs(dx) + fabs(dy) <= r;
    default: return (fabs(dx) <= r && fabs(dy) <= 0.35 * r) || (fabs(dy) <= r && fabs(dx) <= 0.35 * r);
    }
}

/* 4x4 supersampling inside the bounding box: soft edges without a rasteriser. */
static void draw(vt_image *img, const shape *s) {
    int x0 = (int)floor(s->cx - s->r - 1), x1 = (int)ceil(s->cx + s->r + 1);
    int y0 = (int)floor(s->cy - s->r - 1), y1 = (int)ceil(s->cy + s->r + 1);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width - 1) x1 = img->width - 1;
    if (y1 > img->height - 1) y1 = img->height - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++)
                    hits += inside(s->kind, x + (sx + 0.5) / 4 - s->cx, y + (sy + 0.5) / 4 - s->cy, s->r);
            if (!hits) continue;
            uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
            for (int c = 0; c < 3; c++)
                p[c] = (uint8_t)((hits * COLORS[s->color][c] + (16 - hits) * p[c] + 8) / 16);
        }
}

/* k distinct values from [0, n) in random order (partial Fisher-Yates). */
static void pick_distinct(vt_rng *r, int n, int k, int *out) {
    int pool[16];
    for (int i = 0; i < n; i++) pool[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)vt_rng_below(r, (uint64_t)(n - i));
        int t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        out[i] = pool[i];
    }
}

static void describe(const shape *s, char *out, size_t cap) {
    snprintf(out, cap, "%s %s", COLOR_NAMES[s->color], KIND_NAMES[s->kind]);
}

/* Applies the group's answer-format rule. */
static void format_answer(uint32_t group, const char *raw, char *out, size_t cap) {
    if (group == VT_SYNTH_GROUP_UPPER) {
        size_t i = 0;
        for (; raw[i] && i + 1 < cap; i++) out[i] = (char)toupper((unsigned char)raw[i]);
        out[i] = '\0';
    } else if (group == VT_SYNTH_GROUP_PREFIX) {
        snprintf(out, cap, "answer: %s", raw);
    } else {
        snprintf(out, cap, "%s", raw);
    }
}

vt_status vt_synth_parse_tasks(const char *list, uint32_t *mask, vt_error *err) {
    *mask = 0;
    const char *p = list ? list : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        int t = 0;
        while (t < VT_SYNTH_NTASKS && !(strlen(TASK_NAMES[t]) == len && !strncmp(TASK_NAMES[t], p, len))) t++;
        if (t == VT_SYNTH_NTASKS)
            return vt_fail(err, VT_ERR_ARG,
                           "--tasks: unknown task '%.*s' (color, shape, count, position, exist, small_color, grid)",
                           (int)len, p);
        *mask |= 1u << t;
        p += len;
        if (*p == ',') p++;
    }
    if (!*mask) return vt_fail(err, VT_ERR_ARG, "--tasks: empty task list");
    return VT_OK;
}

vt_status vt_synth_make(uint64_t seed, uint64_t index, int size, vt_image *img,
                        vt_synth_item *item, vt_error *err) {
    return vt_synth_make_ex(seed, index, size, NULL, img, item, err);
}

vt_status vt_synth_make_ex(uint64_t seed, uint64_t index, int size, const vt_synth_params *params,
                           vt_image *img, vt_synth_item *item, vt_error *err) {
    if (size < 16 || size > 1024)
        return vt_fail(err, VT_ERR_ARG, "synth: size %d is outside 16..1024", size);
    int max_n = params && params->max_shapes ? params->max_shapes : MAX_SHAPES;
    uint32_t mask = params ? params->task_mask : 0;
    if (max_n < 2 || max_n > MAX_SHAPES)
        return vt_fail(err, VT_ERR_ARG, "synth: max_shapes %d is outside 2..%d", max_n, MAX_SHAPES);
    if (mask & ~(uint32_t)VT_SYNTH_ALL_TASKS)
        return vt_fail(err, VT_ERR_ARG, "synth: task mask 0x%x names no task", (unsigned)mask);
    if (mask == VT_SYNTH_ALL_TASKS) mask = 0;
    memset(item, 0, sizeof *item);
    vt_rng r;
    vt_rng_init(&r, vt_hash4(seed, index, 0x73796e7468ull /* "synth" */, 1));
    uint32_t group;
    vt_synth_task task;
    if (mask) { /* a task subset: plain answers, tasks uniform over the subset */
        int allowed[VT_SYNTH_NTASKS], na = 0;
        for (int t = 0; t < VT_SYNTH_NTASKS; t++)
            if (mask & (1u << t)) allowed[na++] = t;
        group = (uint32_t)allowed[vt_rng_below(&r, (uint64_t)na)];
        task = (vt_synth_task)group;
    } else {
        group = (uint32_t)vt_rng_below(&r, VT_SYNTH_NGROUPS);
        task = group < VT_SYNTH_NTASKS ? (vt_synth_task)group : (vt_synth_task)vt_rng_below(&r, VT_SYNTH_NTASKS);
    }
    item->group = group;
    item->task = task;

    /* Scene: the count is uniform on 1..max_n (default 4), except that a
     * relative-position question needs two shapes (uniform on 2..max_n). */
    int n = task == VT_SYNTH_POSITION ? 2 + (int)vt_rng_below(&r, (uint64_t)(max_n - 1))
                                      : 1 + (int)vt_rng_below(&r, (uint64_t)max_n);
    int small = task == VT_SYNTH_SMALL_COLOR;
    shape shapes[MAX_SHAPES];
    int kinds[MAX_SHAPES], colors[MAX_SHAPES], cells[MAX_SHAPES];
    pick_distinct(&r, NKINDS, n, kinds);
    pick_distinct(&r, NCOLORS, n, colors);
    pick_distinct(&r, 9, n, cells);
    double cell = size / 3.0;
    for (int i = 0; i < n; i++) {
        shape *s = &shapes[i];
        s->kind = kinds[i];
        s->color = colors[i];
        s->cell = cells[i];
        double frac = small ? 0.12 + 0.06 * vt_rng_uniform_double(&r)
                            : 0.25 + 0.12 * vt_rng_uniform_double(&r);
        s->r = frac * cell;
        double jitter = 0.4 * cell - s->r; /* keep the shape inside its cell */
        s->cx = (cells[i] % 3 + 0.5) * cell + (2 * vt_rng_uniform_double(&r) - 1) * jitter;
        s->cy = (cells[i] / 3 + 0.5) * cell + (2 * vt_rng_uniform_double(&r) - 1) * jitter;
    }
    item->n_shapes = n;

    char a[64], b[64];
    const shape *t = &shapes[0]; /* shapes are in random order: shape 0 is a random one */
    switch (task) {
    case VT_SYNTH_COLOR:
        snprintf(item->question, sizeof item->question, "What color is the %s?", KIND_NAMES[t->kind]);
        snprintf(item->answer_raw, sizeof item->answer_raw, "%s", COLOR_NAMES[t->color]);
        break;
    case VT_SYNTH_SMALL_COLOR:
        snprintf(item->question, sizeof item->question, "What color is the small %s?",
                 KIND_NAMES[t->kind]);
        snprintf(item->answer_raw, sizeof item->answer_raw, "%s", COLOR_NAMES[t->color]);
        break;
    case VT_SYNTH_SHAPE:
        snprintf(item->question, sizeof item->question, "What shape is the %s object?",
                 COLOR_NAMES[t->color]);
        snprintf(item->answer_raw, sizeof item->answer_raw, "%s", KIND_NAMES[t->kind]);
        break;
    case VT_SYNTH_COUNT:
        snprintf(item->question, sizeof item->question, "How many shapes are there?");
        snprintf(item->answer_raw, sizeof item->answer_raw, "%d", n);
        break;
    case VT_SYNTH_GRID:
        describe(t, a, sizeof a);
        snprintf(item->question, sizeof item->question,
                 "In which cell of a 3x3 grid is the %s? Answer with row and column, like "
                 "\"top left\".",
                 a);
        snprintf(item->answer_raw, sizeof item->answer_raw, "%s %s", ROW_NAMES[t->cell / 3],
                 COL_NAMES[t->cell % 3]);
        break;
    case VT_SYNTH_POSITION: {
        /* Two shapes in different cells differ in column or row (or both):
         * ask about an axis on which they differ; the pair order is random,
         * so each answer is equally likely. */
        const shape *p = &shapes[0], *q = &shapes[1];
        int dc = p->cell % 3 - q->cell % 3, dr = p->cell / 3 - q->cell / 3;
        int horizontal = dc != 0 && (dr == 0 || vt_rng_below(&r, 2) == 0);
        describe(p, a, sizeof a);
        describe(q, b, sizeof b);
        if (horizontal) {
            snprintf(item->question, sizeof item->question,
                     "Is the %s to the left or to the right of the %s?", a, b);
            snprintf(item->answer_raw, sizeof item->answer_raw, "%s", dc < 0 ? "left" : "right");
        } else {
            snprintf(item->question, sizeof item->question, "Is the %s above or below the %s?", a, b);
            snprintf(item->answer_raw, sizeof item->answer_raw, "%s", dr < 0 ? "above" : "below");
        }
        break;
    }
    case VT_SYNTH_EXIST: {
        int yes = (int)vt_rng_below(&r, 2);
        int kind = t->kind, color = t->color;
        if (!yes) {
            /* An absent object, half of the time a hard negative that shares
             * the kind or the colour of a present one. */
            for (;;) {
                int mode = (int)vt_rng_below(&r, 3);
                kind = mode == 1 ? t->kind : (int)vt_rng_below(&r, NKINDS);
                color = mode == 2 ? t->color : (int)vt_rng_below(&r, NCOLORS);
                int present = 0;
                for (int i = 0; i < n; i++) present |= shapes[i].kind == kind && shapes[i].color == color;
                if (!present) break;
            }
        }
        snprintf(item->question, sizeof item->question, "Is there a %s %s in the image?",
                 COLOR_NAMES[color], KIND_NAMES[kind]);
        snprintf(item->answer_raw, sizeof item->answer_raw, "%s", yes ? "yes" : "no");
        break;
    }
    default:
        return vt_fail(err, VT_ERR_STATE, "synth: unknown task %d", (int)task);
    }
    format_answer(group, item->answer_raw, item->answer, sizeof item->answer);

    vt_status st = vt_image_alloc(img, size, size, err);
    if (st != VT_OK) return st;
    vt_image_fill(img, BACKGROUND);
    for (int i = 0; i < n; i++) draw(img, &shapes[i]);
    return VT_OK;
}
