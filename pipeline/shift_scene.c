/* A small procedural "natural" scene (sky gradient, sun, textured hills, a
 * house with windows, a sign with text-like bars) for looking at shifts and
 * testing them: it has smooth regions where noise shows, edges where blur
 * shows and saturated colours where colour shifts show. */
#include <math.h>
#include <stddef.h>

#include "common/rng.h"
#include "pipeline/shift_scene.h"

static void put(uint8_t *p, double r, double g, double b) {
    double v[3] = {r, g, b};
    for (int c = 0; c < 3; c++) p[c] = (uint8_t)(v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c] + 0.5);
}

void vt_shift_scene(uint8_t *rgb, int w, int h, uint64_t seed) {
    uint64_t k = vt_hash4(seed, 0x5343454e45ull, 0, 0);
    double ph = (double)(k & 0xffff) / 65536.0 * 6.283;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = (x + 0.5) / w, v = (y + 0.5) / h;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            double hill = 0.62 + 0.06 * sin(6.0 * u + ph) + 0.03 * sin(17.0 * u + 2 * ph);
            if (v < hill) { /* sky, sun */
                put(p, 90 + 110 * v, 150 + 70 * v, 235);
                double dx = u - 0.78, dy = v - 0.2;
                if (dx * dx + dy * dy < 0.01) put(p, 255, 225, 90);
            } else { /* grass with fine texture */
                uint64_t hsh = vt_hash4(k, (uint64_t)x, (uint64_t)y, 1);
                double t = (double)(hsh & 0xff) / 255.0 - 0.5;
                double stripe = 10 * sin(40 * u + 25 * v);
                put(p, 60 + 20 * t + stripe, 140 + 40 * t - 60 * (v - hill) + stripe, 50 + 15 * t);
            }
            /* house: walls, roof, door, windows */
            if (u > 0.18 && u < 0.48 && v > 0.45 && v < 0.78) {
                put(p, 200, 70, 55);
                if ((u > 0.22 && u < 0.29 && v > 0.52 && v < 0.6) || (u > 0.37 && u < 0.44 && v > 0.52 && v < 0.6))
                    put(p, 230, 240, 250);
                if (u > 0.3 && u < 0.36 && v > 0.62) put(p, 90, 50, 30);
            }
            if (v > 0.3 && v <= 0.45 && fabs(u - 0.33) < (v - 0.3) / 0.15 * 0.18) put(p, 110, 40, 35);
            /* sign with dark text-like bars */
            if (u > 0.58 && u < 0.9 && v > 0.68 && v < 0.9) {
                put(p, 245, 240, 225);
                int row = (int)((v - 0.7) / 0.045);
                double len = 0.28 - 0.05 * (row % 3);
                if (v > 0.7 && v < 0.88 && fmod(v - 0.7, 0.045) < 0.022 && u > 0.6 && u < 0.6 + len &&
                    fmod(u * 40, 1.0) < 0.8)
                    put(p, 30, 30, 40);
            }
        }
}
