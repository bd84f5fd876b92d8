/* The evaluation result store: an LMDB environment (a directory) mapping a
 * task id to its vt.EvalResult. Each task's result is stored exactly once:
 * put is insert-if-absent, so a re-run task or a duplicate report from a
 * worker whose lease expired changes nothing, and a rerun of the whole
 * schedule skips what the store already has. */
#ifndef VT_RESULT_STORE_H
#define VT_RESULT_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "proto/eval.pb-c.h"

typedef struct vt_result_store vt_result_store;

/* Opens (creating when `writable` and absent) the store in directory `dir`.
 * A read-only open of a missing store is an error. */
vt_status vt_result_store_open(const char *dir, bool writable, vt_result_store **out, vt_error *err);
void vt_result_store_close(vt_result_store *s);

/* Inserts r under r->task->task_id unless that id is present; *stored tells
 * which happened. Durable on return (LMDB commit with sync). Grows the map
 * when it is full. */
vt_status vt_result_store_put(vt_result_store *s, const Vt__EvalResult *r, bool *stored, vt_error *err);
vt_status vt_result_store_has(vt_result_store *s, const char *task_id, bool *has, vt_error *err);
/* *out is NULL when absent; free with vt__eval_result__free_unpacked. */
vt_status vt_result_store_get(vt_result_store *s, const char *task_id, Vt__EvalResult **out,
                              vt_error *err);
vt_status vt_result_store_count(vt_result_store *s, size_t *count, vt_error *err);

/* Calls fn for every result in task-id order; a non-OK return from fn stops
 * the walk and is returned. A record that does not decode is VT_ERR_FORMAT
 * naming its key. */
typedef vt_status (*vt_result_fn)(const Vt__EvalResult *r, void *ctx, vt_error *err);
vt_status vt_result_store_each(vt_result_store *s, vt_result_fn fn, void *ctx, vt_error *err);

#endif
