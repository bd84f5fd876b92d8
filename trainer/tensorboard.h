/* TensorBoard event files: TFRecord framing (uint64 length, masked CRC32C of
 * the length, the record, masked CRC32C of the record) around tensorflow.Event
 * protos holding scalar summaries (proto/tensorboard.proto). The file name
 * follows TensorBoard's pattern so `tensorboard --logdir DIR` finds it. */
#ifndef VT_TRAINER_TENSORBOARD_H
#define VT_TRAINER_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_tb_writer vt_tb_writer;

/* Creates dir (mkdir -p) and dir/events.out.tfevents.<unix s>.<host>.<pid>,
 * whose first record is the file_version event. */
vt_status vt_tb_open(const char *dir, vt_tb_writer **out, vt_error *err);
/* Flushes and closes; NULL is fine. */
void vt_tb_close(vt_tb_writer *w);
const char *vt_tb_path(const vt_tb_writer *w);

enum { VT_TB_MAX_SCALARS = 64 };

/* One Event at `step` with n (1..VT_TB_MAX_SCALARS) scalar values (tags copied into the record). */
vt_status vt_tb_scalars(vt_tb_writer *w, int64_t step, int n, const char *const *tags,
                        const float *values, vt_error *err);
vt_status vt_tb_scalar(vt_tb_writer *w, int64_t step, const char *tag, float value, vt_error *err);
/* fflush + fsync, so a killed run leaves whole records behind. */
vt_status vt_tb_flush(vt_tb_writer *w, vt_error *err);

/* CRC-32C (Castagnoli, reflected 0x82F63B78) and TFRecord's mask of it:
 * ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t vt_crc32c(const void *data, size_t len);
uint32_t vt_crc32c_masked(const void *data, size_t len);

#endif
