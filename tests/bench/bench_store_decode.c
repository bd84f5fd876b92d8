/* Store read + WebP decode throughput, one thread: every record of a store
 * is read zero-copy (vt_store_get_raw + vt_sample_peek_image) and decoded
 * into one batch buffer with vt_webp_decode_into, against libwebp's own
 * WebPDecodeRGBInto on the same bytes (the peer). Best of R rounds.
 *   bench_store_decode DB [rounds]   (docs/data.md has results) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <webp/decode.h>

#include "pipeline/store.h"
#include "pipeline/image.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store_decode DB [rounds]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    vt_error err = {0};
    vt_store *s;
    if (vt_store_open(argv[1], &s, &err) != VT_OK) {
        fprintf(stderr, "bench_store_decode: %s\n", err.msg);
        return 1;
    }
    uint64_t n = vt_store_count(s);
    vt_store_txn *t;
    if (n == 0 || vt_store_txn_begin(s, &t, &err) != VT_OK) {
        fprintf(stderr, "bench_store_decode: empty store or %s\n", err.msg);
        return 1;
    }
    size_t cap = 0;
    uint8_t *buf = NULL;
    double best_ours = 1e30, best_peer = 1e30, pixels = 0;
    for (int r = 0; r < rounds; r++) {
        for (int peer = 0; peer < 2; peer++) {
            double t0 = now(), px = 0;
            for (uint64_t i = 0; i < n; i++) {
                const uint8_t *raw;
                size_t len;
                vt_sample_image_ref ref;
                if (vt_store_get_raw(t, i, &raw, &len, &err) != VT_OK ||
                    vt_sample_peek_image(raw, len, &ref, &err) != VT_OK) {
                    fprintf(stderr, "bench_store_decode: %s\n", err.msg);
                    return 1;
                }
                size_t need = (size_t)ref.width * ref.height * 3;
                if (need > cap) {
                    free(buf);
                    buf = malloc(need);
                    cap = need;
                }
                int ok = peer ? WebPDecodeRGBInto(ref.webp, ref.webp_len, buf, need, (int)ref.width * 3) != NULL
                              : vt_webp_decode_into(ref.webp, ref.webp_len, "bench", NULL, buf,
                                                    (size_t)ref.width * 3, (int)ref.width,
                                                    (int)ref.height, &err) == VT_OK;
                if (!ok) {
                    fprintf(stderr, "bench_store_decode: record %llu: decode failed %s\n",
                            (unsigned long long)i, err.msg);
                    return 1;
                }
                px += (double)ref.width * ref.height;
            }
            double dt = now() - t0;
            pixels = px;
            if (peer) { if (dt < best_peer) best_peer = dt; }
            else if (dt < best_ours) best_ours = dt;
        }
    }
    printf("records %llu, %.2f Mpx per pass, best of %d\n", (unsigned long long)n, pixels / 1e6, rounds);
    printf("vistune store read + vt_webp_decode_into: %.0f images/s, %.1f Mpx/s\n", n / best_ours,
           pixels / 1e6 / best_ours);
    printf("libwebp WebPDecodeRGBInto alone:           %.0f images/s, %.1f Mpx/s\n", n / best_peer,
           pixels / 1e6 / best_peer);
    printf("ratio: %.1f%%\n", 100.0 * best_peer / best_ours);
    free(buf);
    vt_store_txn_end(t);
    vt_store_close(s);
    return 0;
}
