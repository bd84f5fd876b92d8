/* TensorBoard event-file writer: packs vt.tb.Event with protobuf-c and frames
 * it as a TFRecord. Only rank 0 writes; records are appended and flushed per
 * event so a crash loses at most the record being written. */
#include "trainer/tensorboard.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "proto/tensorboard.pb-c.h"

struct vt_tb_writer {
    FILE *fp;
    char path[PATH_MAX];
};

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t vt_crc32c(const void *data, size_t len) {
    if (!crc_ready) crc_init();
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t vt_crc32c_masked(const void *data, size_t len) {
    uint32_t c = vt_crc32c(data, len);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void put_le32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static vt_status write_record(vt_tb_writer *w, const Vt__Tb__Event *ev, vt_error *err) {
    size_t n = vt__tb__event__get_packed_size(ev);
    unsigned char *buf = malloc(n + 16);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "tensorboard: out of memory for a %zu-byte record", n);
    unsigned char head[12];
    uint64_t len = n;
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)(len >> (8 * i));
    put_le32(head + 8, vt_crc32c_masked(head, 8));
    vt__tb__event__pack(ev, buf);
    put_le32(buf + n, vt_crc32c_masked(buf, n));
    int ok = fwrite(head, 1, 12, w->fp) == 12 && fwrite(buf, 1, n + 4, w->fp) == n + 4;
    free(buf);
    if (!ok || fflush(w->fp) != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: write failed", w->path);
    return VT_OK;
}

vt_status vt_tb_open(const char *dir, vt_tb_writer **out, vt_error *err) {
    *out = NULL;
    vt_status st = vt_mkdir_p(dir, err);
    if (st) return st;
    vt_tb_writer *w = calloc(1, sizeof *w);
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "tensorboard: out of memory");
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    int len = snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir,
                       (long long)time(NULL), host, (int)getpid());
    if (len < 0 || (size_t)len >= sizeof w->path) {
        free(w);
        return vt_fail(err, VT_ERR_RANGE, "%s: tensorboard path too long", dir);
    }
    w->fp = fopen(w->path, "wb");
    if (!w->fp) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create", w->path);
        free(w);
        return st;
    }
    Vt__Tb__Event ev = VT__TB__EVENT__INIT;
    ev.wall_time = wall_now();
    ev.file_version = "brain.Event:2";
    st = write_record(w, &ev, err);
    if (st) {
        vt_tb_close(w);
        return st;
    }
    *out = w;
    return VT_OK;
}

void vt_tb_close(vt_tb_writer *w) {
    if (!w) return;
    if (w->fp) fclose(w->fp);
    free(w);
}

const char *vt_tb_path(const vt_tb_writer *w) { return w->path; }

vt_status vt_tb_scalars(vt_tb_writer *w, int64_t step, int n, const char *const *tags,
                        const float *values, vt_error *err) {
    if (n <= 0 || n > VT_TB_MAX_SCALARS) return vt_fail(err, VT_ERR_ARG, "tensorboard: %d scalars in one event", n);
    Vt__Tb__SummaryValue vals[VT_TB_MAX_SCALARS];
    Vt__Tb__SummaryValue *ptrs[VT_TB_MAX_SCALARS];
    for (int i = 0; i < n; i++) {
        vt__tb__summary_value__init(&vals[i]);
        vals[i].tag = (char *)tags[i];
        vals[i].simple_value = values[i];
        ptrs[i] = &vals[i];
    }
    Vt__Tb__Summary sum = VT__TB__SUMMARY__INIT;
    sum.n_value = (size_t)n;
    sum.value = ptrs;
    Vt__Tb__Event ev = VT__TB__EVENT__INIT;
    ev.wall_time = wall_now();
    ev.step = step;
    ev.summary = &sum;
    return write_record(w, &ev, err);
}

vt_status vt_tb_scalar(vt_tb_writer *w, int64_t step, const char *tag, float value, vt_error *err) {
    return vt_tb_scalars(w, step, 1, &tag, &value, err);
}

vt_status vt_tb_flush(vt_tb_writer *w, vt_error *err) {
    if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0)
        return vt_fail_errno(err, VT_ERR_IO, "%s: flush failed", w->path);
    return VT_OK;
}
