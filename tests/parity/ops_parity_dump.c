/* Parity driver for the ops: runs the op suite (ops_suite.h) through a vt_ctx
 * (CPU, or CUDA with --cuda) and writes every op's inputs, outputs and
 * gradients to one binary file for ops_parity.py, which recomputes them
 * independently in PyTorch float64.
 *
 * File: "VTOPSPAR" | u32 version | records...; a record is a name followed by
 * tensors and ends with an empty tensor name. A name is u32 length + bytes.
 * A tensor is name | u32 dtype (0 f32, 1 i32, 2 u8) | u32 ndim | i64 dims[ndim]
 * | raw little-endian data. The file ends with an empty record name. */
#include "ops_suite.h"

#define PARITY_VERSION 1u

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put_name(FILE *f, const char *s) {
    put_u32(f, (uint32_t)strlen(s));
    fwrite(s, 1, strlen(s), f);
}
static void file_record(void *u, const char *name) { put_name(u, name); }
static void file_record_end(void *u) { put_u32(u, 0); }
static void file_tensor(void *u, const char *name, uint32_t dtype, const void *data, size_t esize,
                        const int64_t *dims, int ndim) {
    FILE *f = u;
    put_name(f, name);
    put_u32(f, dtype);
    put_u32(f, (uint32_t)ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        fwrite(&dims[i], 8, 1, f);
        n *= (size_t)dims[i];
    }
    fwrite(data, esize, n, f);
}

int main(int argc, char **argv) {
    int cuda = argc == 3 && strcmp(argv[2], "--cuda") == 0;
    if (argc < 2 || (argc == 3 && !cuda) || argc > 3) {
        fprintf(stderr, "usage: ops_parity_dump OUT.bin [--cuda]\n");
        return 2;
    }
    vt_error err = {0};
    vt_ctx *ctx = NULL;
    vt_ctx_options o = {cuda ? VT_BACKEND_CUDA : VT_BACKEND_CPU, 0, 0};
    if (cuda && vt_cuda_device_count() == 0) {
        fprintf(stderr, "ops_parity_dump: no CUDA device\n");
        return 77;
    }
    if (vt_ctx_create(&ctx, &o, &err) != VT_OK) {
        fprintf(stderr, "ops_parity_dump: %s\n", err.msg);
        return 1;
    }
    FILE *out_f = fopen(argv[1], "wb");
    if (!out_f) {
        perror(argv[1]);
        return 1;
    }
    fwrite("VTOPSPAR", 1, 8, out_f);
    put_u32(out_f, PARITY_VERSION);
    ops_sink s = {file_record, file_tensor, file_record_end, out_f};
    ops_suite_run(ctx, &s);
    put_u32(out_f, 0);
    if (fclose(out_f) != 0) {
        perror(argv[1]);
        return 1;
    }
    vt_ctx_destroy(ctx);
    return 0;
}
