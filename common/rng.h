/* Counter-based random numbers (Philox4x32-10, the generator of cuRAND and
 * PyTorch's CUDA RNG). A stream is (key, counter): any draw is a pure function
 * of its position, so the determinism contract needs no shared state --
 * augmentation for sample i in epoch e uses key vt_hash(seed, e, i) on every
 * loader -- and saving a generator is copying a small struct. */
#ifndef VT_RNG_H
#define VT_RNG_H

#include <stdint.h>

typedef struct vt_rng {
    uint64_t key;
    uint64_t counter; /* which 128-bit block comes next */
    uint32_t block[4];
    uint32_t used;    /* words of block already handed out (4 = empty) */
} vt_rng;

/* One Philox4x32-10 block: 128 random bits for (key, counter). */
void vt_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);

/* 64-bit mixing (splitmix64 finaliser) and a hash of up to four words, used
 * to derive stream keys: vt_hash4(seed, epoch, index, purpose). */
uint64_t vt_mix64(uint64_t x);
uint64_t vt_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* FNV-1a over bytes then mixed: for string-named things (shift names). */
uint64_t vt_hash_bytes(const void *data, uint64_t len, uint64_t seed);

void vt_rng_init(vt_rng *r, uint64_t key);
uint32_t vt_rng_u32(vt_rng *r);
uint64_t vt_rng_u64(vt_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t vt_rng_below(vt_rng *r, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits; double with 53. */
float vt_rng_uniform(vt_rng *r);
double vt_rng_uniform_double(vt_rng *r);
/* Standard normal (Box-Muller on two uniforms). */
double vt_rng_normal(vt_rng *r);

#endif
