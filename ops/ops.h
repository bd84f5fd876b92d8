/* ops: vistune's numeric core. Layers are forward/backward function pairs over
 * flat row-major float32 buffers (llm.c style): shapes are plain ints, every
 * op takes the backend handle vt_ctx first, returns a vt_status, and leaves
 * its error message in vt_ctx_error(ctx). Backward functions ADD into every
 * gradient they are given (callers zero gradient buffers once per step), and
 * a NULL gradient pointer means "not needed". */
#ifndef VT_OPS_OPS_H
#define VT_OPS_OPS_H

#include "ops/activation.h"
#include "ops/adaln.h"
#include "ops/attention.h"
#include "ops/crossentropy.h"
#include "ops/ctx.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/noise.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/patch_embed.h"
#include "ops/rope.h"
#include "ops/rows.h"
#include "ops/vib.h"

#endif
