/* Blur corruptions (ImageNet-C exact parameters): defocus (anti-aliased
 * disk), glass (blur, local pixel shuffling, blur), motion (one-sided line
 * kernel), zoom (average of centre zooms) and plain Gaussian blur. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

VT_SHIFT_IMAGE_KERNEL(gaussian_blur) {
    (void)rng;
    static const double sigma[5] = {1, 2, 3, 4, 6};
    return vt_shift_gaussian_blur(rgb, w, h, 3, sigma[severity - 1], 4.0, VT_BORDER_CLAMP, err);
}

/* ImageNet-C disk(): a binary disk of radius r on a grid of at least
 * [-8, 8], smoothed by a 3x3 (5x5 when r > 8) Gaussian of sigma alias_blur. */
VT_SHIFT_IMAGE_KERNEL(defocus_blur) {
    (void)rng;
    static const double radius[5] = {3, 4, 6, 8, 10}, alias[5] = {.1, .5, .5, .5, .5};
    double r = radius[severity - 1], sa = alias[severity - 1];
    int half = r <= 8 ? 8 : (int)r, n = 2 * half + 1, gk = r <= 8 ? 3 : 5;
    float *disk = malloc(sizeof(float) * (size_t)n * n);
    if (!disk) return vt_fail(err, VT_ERR_NOMEM, "defocus_blur: out of memory");
    double sum = 0;
    for (int y = -half; y <= half; y++)
        for (int x = -half; x <= half; x++) sum += disk[(y + half) * n + x + half] = (x * x + y * y <= r * r);
    for (int i = 0; i < n * n; i++) disk[i] = (float)(disk[i] / sum);
    float g[25];
    double gs = 0;
    for (int j = 0; j < gk; j++)
        for (int i = 0; i < gk; i++) {
            double dx = i - gk / 2, dy = j - gk / 2;
            gs += g[j * gk + i] = (float)exp(-(dx * dx + dy * dy) / (2 * sa * sa));
        }
    for (int i = 0; i < gk * gk; i++) g[i] = (float)(g[i] / gs);
    vt_status st = vt_shift_filter2d(disk, n, n, 1, g, gk, gk, VT_BORDER_REFLECT101, err);
    if (st == VT_OK) st = vt_shift_filter2d(rgb, w, h, 3, disk, n, n, VT_BORDER_REFLECT101, err);
    free(disk);
    return st;
}

/* ImageNet-C glass_blur: Gaussian blur, quantise to uint8, then `it` sweeps
 * from the bottom-right swapping each pixel with a neighbour at offset in
 * [-delta, delta), blur again. The sweep bounds use the image size instead
 * of the hard-coded 224. */
VT_SHIFT_IMAGE_KERNEL(glass_blur) {
    static const double sigma[5] = {.7, .9, 1, 1.1, 1.5};
    static const int delta[5] = {1, 2, 2, 3, 4}, iters[5] = {2, 1, 3, 2, 2};
    double s = sigma[severity - 1];
    int d = delta[severity - 1];
    vt_status st = vt_shift_gaussian_blur(rgb, w, h, 3, s, 4.0, VT_BORDER_CLAMP, err);
    if (st != VT_OK) return st;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        float v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        rgb[i] = (float)(uint8_t)(v * 255) / 255.0f;
    }
    for (int it = 0; it < iters[severity - 1]; it++)
        for (int y = h - d; y > d; y--)
            for (int x = w - d; x > d; x--) {
                int dx = (int)vt_rng_below(rng, (uint64_t)(2 * d)) - d;
                int dy = (int)vt_rng_below(rng, (uint64_t)(2 * d)) - d;
                int yy = y + dy, xx = x + dx;
                if (y >= h || x >= w || yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
                float *a = rgb + ((size_t)y * w + x) * 3, *b = rgb + ((size_t)yy * w + xx) * 3;
                for (int c = 0; c < 3; c++) {
                    float t = a[c];
                    a[c] = b[c], b[c] = t;
                }
            }
    return vt_shift_gaussian_blur(rgb, w, h, 3, s, 4.0, VT_BORDER_CLAMP, err);
}

VT_SHIFT_IMAGE_KERNEL(motion_blur) {
    static const double radius[5] = {10, 15, 15, 15, 20}, sigma[5] = {3, 5, 8, 12, 15};
    double angle = -45 + 90 * vt_rng_uniform_double(rng);
    return vt_shift_motion_blur(rgb, w, h, 3, radius[severity - 1], sigma[severity - 1], angle, err);
}

/* Zoom factors are np.arange(1, max, step) as in ImageNet-C (the upper
 * bounds 1.11/1.16/1.21/1.26/1.31 exclude the next step). */
VT_SHIFT_IMAGE_KERNEL(zoom_blur) {
    (void)rng;
    static const double stop[5] = {1.11, 1.16, 1.21, 1.26, 1.31}, step[5] = {.01, .01, .02, .02, .03};
    size_t n = (size_t)w * h * 3;
    float *acc = calloc(n, sizeof(float)), *z = malloc(sizeof(float) * n);
    if (!acc || !z) {
        free(acc), free(z);
        return vt_fail(err, VT_ERR_NOMEM, "zoom_blur: out of memory");
    }
    int count = 0;
    for (int k = 0;; k++) {
        double f = 1 + k * step[severity - 1];
        if (f >= stop[severity - 1] - 1e-9) break;
        vt_shift_zoom_center(rgb, z, w, h, 3, f);
        for (size_t i = 0; i < n; i++) acc[i] += z[i];
        count++;
    }
    for (size_t i = 0; i < n; i++) rgb[i] = (rgb[i] + acc[i]) / (float)(count + 1);
    free(acc), free(z);
    return VT_OK;
}
