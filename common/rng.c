/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11) and the helpers built on it. */
#include "common/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void vt_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint64_t vt_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t vt_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    uint64_t h = vt_mix64(a);
    h = vt_mix64(h ^ b);
    h = vt_mix64(h ^ c);
    return vt_mix64(h ^ d);
}

uint64_t vt_hash_bytes(const void *data, uint64_t len, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 0xCBF29CE484222325ull ^ seed;
    for (uint64_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return vt_mix64(h);
}

void vt_rng_init(vt_rng *r, uint64_t key) {
    r->key = key;
    r->counter = 0;
    r->used = 4;
}

uint32_t vt_rng_u32(vt_rng *r) {
    if (r->used == 4) {
        vt_philox4x32(r->key, 0, r->counter++, r->block);
        r->used = 0;
    }
    return r->block[r->used++];
}

uint64_t vt_rng_u64(vt_rng *r) {
    uint64_t hi = vt_rng_u32(r);
    return (hi << 32) | vt_rng_u32(r);
}

uint64_t vt_rng_below(vt_rng *r, uint64_t n) {
    /* Rejection sampling on the top of the range (Lemire-style threshold). */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = vt_rng_u64(r);
        if (x >= threshold) return x % n;
    }
}

float vt_rng_uniform(vt_rng *r) { return (float)(vt_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double vt_rng_uniform_double(vt_rng *r) {
    return (double)(vt_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double vt_rng_normal(vt_rng *r) {
    double u1 = vt_rng_uniform_double(r), u2 = vt_rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}
