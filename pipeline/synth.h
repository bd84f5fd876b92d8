/* The built-in "shapes" visual-question set: procedural canvases with 1-4
 * coloured shapes and one question each, deterministic in (seed, index).
 * Written as LLaVA JSON + PNG images by `vistune synth`, ingested like any
 * other LLaVA data. Task types and chance levels are in docs/data.md. */
#ifndef VT_PIPELINE_SYNTH_H
#define VT_PIPELINE_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/image.h"

enum { VT_SYNTH_TEXT_MAX = 256 };

/* Question types, in the order of their group ids 0..6. */
typedef enum vt_synth_task {
    VT_SYNTH_COLOR = 0,    /* "What color is the circle?" -> one of 7 colours */
    VT_SYNTH_SHAPE,        /* "What shape is the red object?" -> one of 5 kinds */
    VT_SYNTH_COUNT,        /* "How many shapes are there?" -> 1..4 */
    VT_SYNTH_POSITION,     /* "Is the A to the left or to the right of the B?" -> 2-way */
    VT_SYNTH_EXIST,        /* "Is there a red circle?" -> yes/no, negatives absent objects */
    VT_SYNTH_SMALL_COLOR,  /* fine-grained: all shapes small; colour of one */
    VT_SYNTH_GRID,         /* fine-grained: 3x3 cell of a shape, "top left" ... */
    VT_SYNTH_NTASKS
} vt_synth_task;

/* Groups 0..6 = the task of the same number with plain answers. Groups 7 and
 * 8 mix all tasks but format answers by a rule only demonstrations reveal. */
enum { VT_SYNTH_GROUP_UPPER = 7, VT_SYNTH_GROUP_PREFIX = 8, VT_SYNTH_NGROUPS = 9 };

typedef struct vt_synth_item {
    vt_synth_task task;
    uint32_t group;
    char question[VT_SYNTH_TEXT_MAX]; /* without the "<image>\n" prefix */
    char answer[VT_SYNTH_TEXT_MAX];   /* after the group's format rule */
    char answer_raw[VT_SYNTH_TEXT_MAX]; /* before it */
    int n_shapes;
} vt_synth_item;

const char *vt_synth_task_name(vt_synth_task t);

/* Difficulty knobs of the set (`vistune synth --max-shapes --tasks`). */
typedef struct vt_synth_params {
    int max_shapes;     /* shapes per image: 1..max_shapes (2..max for position); 2..4, default 4 */
    uint32_t task_mask; /* bit t = task t may be drawn; 0 or all 7 bits = every group 0..8 */
} vt_synth_params;

enum { VT_SYNTH_MAX_SHAPES = 4, VT_SYNTH_ALL_TASKS = (1u << VT_SYNTH_NTASKS) - 1 };

/* Draws item `index` of the set with `seed` at size x size pixels (16..1024)
 * into *img (allocated) and fills *item. A pure function of its inputs.
 * vt_synth_make = vt_synth_make_ex with the defaults (params NULL). With a
 * task subset, the group is drawn uniformly from those tasks' groups (plain
 * answers; no groups 7 and 8); with max_shapes < 4 the scenes have fewer
 * shapes. Either changes the items, so item i of such a set is not item i
 * of the default set. */
vt_status vt_synth_make(uint64_t seed, uint64_t index, int size, vt_image *img,
                        vt_synth_item *item, vt_error *err);
vt_status vt_synth_make_ex(uint64_t seed, uint64_t index, int size, const vt_synth_params *params,
                           vt_image *img, vt_synth_item *item, vt_error *err);
/* Parses a comma-separated task list ("count,color") into a mask; an
 * unknown name is an error naming it. */
vt_status vt_synth_parse_tasks(const char *list, uint32_t *mask, vt_error *err);

typedef struct vt_synth_opts {
    uint64_t seed;
    uint64_t count;
    int size;   /* canvas side in pixels */
    bool force; /* replace an existing output directory */
    vt_synth_params params; /* zero = defaults */
} vt_synth_opts;

/* Writes out_dir/data.json and out_dir/images/NNNNNNNNN.png, built in a
 * temporary sibling directory and renamed into place when complete. */
vt_status vt_synth_write(const char *out_dir, const vt_synth_opts *opts, vt_error *err);

/* `vistune synth --out DIR --count N --seed S [--size PX] [--max-shapes K]
 *  [--tasks LIST] [--force]` */
int vt_cmd_synth(int argc, char **argv);

#endif
