/* Weather corruptions: snow, fog and spatter with ImageNet-C's parameters,
 * and frost_proc -- ImageNet-C's frost blend (a*x + b*frost) over a frost
 * layer generated procedurally (plasma haze + Voronoi ice-crystal edges,
 * white-blue tint, denser towards the borders) because the six frost photos
 * are not available offline. frost_proc is therefore not comparable 1:1 with
 * published ImageNet-C frost numbers (docs/shifts.md). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

VT_SHIFT_IMAGE_KERNEL(snow) {
    static const double mu[5] = {.1, .2, .55, .55, .55}, sd[5] = {.3, .3, .3, .3, .3};
    static const double zoom[5] = {3, 2, 4, 4.5, 2.5}, thr[5] = {.5, .5, .9, .85, .85};
    static const double rad[5] = {10, 12, 12, 12, 12}, sig[5] = {4, 4, 8, 8, 12}, wt[5] = {.8, .7, .7, .65, .55};
    int s = severity - 1;
    size_t np = (size_t)w * h;
    float *noise = calloc(np, sizeof(float)), *layer = calloc(np, sizeof(float));
    if (!noise || !layer) {
        free(noise), free(layer);
        return vt_fail(err, VT_ERR_NOMEM, "snow: out of memory");
    }
    for (size_t i = 0; i < np; i++) noise[i] = (float)(mu[s] + sd[s] * vt_rng_normal(rng));
    vt_shift_zoom_center(noise, layer, w, h, 1, zoom[s]);
    /* threshold, clip, quantise like the PIL round trip, then motion blur */
    for (size_t i = 0; i < np; i++) {
        float v = layer[i] < thr[s] ? 0 : clamp01(layer[i]);
        layer[i] = (float)(uint8_t)(v * 255) / 255.0f;
    }
    double angle = -135 + 90 * vt_rng_uniform_double(rng);
    vt_status st = vt_shift_motion_blur(layer, w, h, 1, rad[s], sig[s], angle, err);
    if (st == VT_OK) {
        for (size_t i = 0; i < np; i++) {
            float *p = rgb + i * 3;
            float gray = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            float flake = layer[i] + layer[np - 1 - i]; /* plus its 180 degree rotation */
            for (int c = 0; c < 3; c++) {
                float v = (float)(wt[s] * p[c] + (1 - wt[s]) * fmaxf(p[c], gray * 1.5f + 0.5f));
                p[c] = v + flake;
            }
        }
    }
    free(noise), free(layer);
    return st;
}

VT_SHIFT_IMAGE_KERNEL(fog) {
    static const double k[5] = {1.5, 2, 2.5, 2.5, 3}, decay[5] = {2, 2, 1.7, 1.5, 1.4};
    int size = vt_shift_plasma_size(w, h);
    float *map = malloc(sizeof(float) * (size_t)size * size);
    if (!map) return vt_fail(err, VT_ERR_NOMEM, "fog: out of memory");
    vt_status st = vt_shift_plasma(map, size, decay[severity - 1], rng, err);
    if (st == VT_OK) {
        float mx = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) mx = fmaxf(mx, rgb[i]);
        double kk = k[severity - 1];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    float *p = rgb + ((size_t)y * w + x) * 3 + c;
                    *p = (float)((*p + kk * map[(size_t)y * size + x]) * mx / (mx + kk));
                }
    }
    free(map);
    return st;
}

/* Distance to the nearest and second-nearest jittered-grid seed (one seed
 * per cell, 3x3 neighbourhood): F2 - F1 is small on Voronoi cell borders,
 * which read as the facets of ice crystals. Seeds come from the item rng via
 * a per-cell hash so the layer is a pure function of the seed. */
static float voronoi_edge(double x, double y, double cell, uint64_t key) {
    int cx = (int)floor(x / cell), cy = (int)floor(y / cell);
    double f1 = 1e30, f2 = 1e30;
    for (int j = -1; j <= 1; j++)
        for (int i = -1; i <= 1; i++) {
            uint64_t hsh = vt_hash4(key, (uint64_t)(int64_t)(cx + i), (uint64_t)(int64_t)(cy + j), 0);
            double sx = (cx + i + (double)(hsh & 0xffffff) / 16777216.0) * cell;
            double sy = (cy + j + (double)((hsh >> 24) & 0xffffff) / 16777216.0) * cell;
            double d = hypot(x - sx, y - sy);
            if (d < f1) f2 = f1, f1 = d;
            else if (d < f2) f2 = d;
        }
    return (float)exp(-(f2 - f1) / (0.06 * cell));
}

VT_SHIFT_IMAGE_KERNEL(frost_proc) {
    static const double a[5] = {1, .8, .7, .65, .6}, b[5] = {.4, .6, .7, .7, .75};
    int size = vt_shift_plasma_size(w, h);
    float *haze = malloc(sizeof(float) * (size_t)size * size);
    if (!haze) return vt_fail(err, VT_ERR_NOMEM, "frost_proc: out of memory");
    vt_status st = vt_shift_plasma(haze, size, 1.6, rng, err);
    if (st != VT_OK) {
        free(haze);
        return st;
    }
    uint64_t k1 = vt_rng_u64(rng), k2 = vt_rng_u64(rng);
    double side = w < h ? w : h, big = side / 5.0, small = side / 13.0;
    static const float tint[3] = {210 / 255.0f, 230 / 255.0f, 250 / 255.0f};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double e = fmin(fmin(x, w - 1 - x), fmin(y, h - 1 - y)) / (side / 2);
            double vign = 0.45 + 0.55 * pow(1 - fmin(e, 1), 1.5);
            float crystal = fmaxf(voronoi_edge(x, y, big, k1), 0.7f * voronoi_edge(x, y, small, k2));
            float v = clamp01((float)(vign * (0.45 * haze[(size_t)y * size + x] + 0.8 * crystal)));
            float *p = rgb + ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++)
                p[c] = (float)(a[severity - 1] * p[c] + b[severity - 1] * (0.15 + 0.85 * v) * tint[c]);
        }
    free(haze);
    return VT_OK;
}

/* Squared-free two-pass chamfer distance (3-4 weights / 3) to the nearest
 * zero of `zero` -- stands in for cv2.distanceTransform(DIST_L2, 5). */
static void chamfer(const uint8_t *is_edge, float *d, int w, int h) {
    const float big = 1e9f, a = 1.0f, b = 4.0f / 3.0f;
    for (size_t i = 0; i < (size_t)w * h; i++) d[i] = is_edge[i] ? 0 : big;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *p = d + (size_t)y * w + x;
            if (x > 0) *p = fminf(*p, p[-1] + a);
            if (y > 0) {
                *p = fminf(*p, p[-w] + a);
                if (x > 0) *p = fminf(*p, p[-w - 1] + b);
                if (x < w - 1) *p = fminf(*p, p[-w + 1] + b);
            }
        }
    for (int y = h - 1; y >= 0; y--)
        for (int x = w - 1; x >= 0; x--) {
            float *p = d + (size_t)y * w + x;
            if (x < w - 1) *p = fminf(*p, p[1] + a);
            if (y < h - 1) {
                *p = fminf(*p, p[w] + a);
                if (x < w - 1) *p = fminf(*p, p[w + 1] + b);
                if (x > 0) *p = fminf(*p, p[w - 1] + b);
            }
        }
}

static vt_status box3(float *img, int w, int h, vt_error *err) {
    static const float k[9] = {1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f, 1 / 9.f};
    return vt_shift_filter2d(img, w, h, 1, k, 3, 3, VT_BORDER_REFLECT101, err);
}

/* ImageNet-C spatter. Water (s1-3): liquid-region borders -> distance
 * transform truncated at 20 -> blur -> histogram equalisation -> emboss ->
 * blur, times the liquid field, normalised and scaled by k, added as pale
 * turquoise. Canny on the thresholded field is replaced by the border of the
 * non-zero region (where Canny fires on such a field). Mud (s4-5): the
 * liquid mask blurred by k, cut below 0.8, replaced by brown. */
VT_SHIFT_IMAGE_KERNEL(spatter) {
    static const double mu[5] = {.65, .65, .65, .65, .67}, sd[5] = {.3, .3, .3, .3, .4};
    static const double sb[5] = {4, 3, 2, 1, 1}, thr[5] = {.69, .68, .68, .65, .65}, kk[5] = {.6, .6, .5, 1.5, 1.5};
    int s = severity - 1, mud = severity >= 4;
    size_t np = (size_t)w * h;
    float *liq = malloc(sizeof(float) * np), *dist = malloc(sizeof(float) * np);
    uint8_t *edge = malloc(np);
    vt_status st = VT_OK;
    if (!liq || !dist || !edge) {
        st = vt_fail(err, VT_ERR_NOMEM, "spatter: out of memory");
        goto done;
    }
    for (size_t i = 0; i < np; i++) liq[i] = (float)(mu[s] + sd[s] * vt_rng_normal(rng));
    if ((st = vt_shift_gaussian_blur(liq, w, h, 1, sb[s], 4.0, VT_BORDER_CLAMP, err)) != VT_OK) goto done;
    for (size_t i = 0; i < np; i++)
        if (liq[i] < thr[s]) liq[i] = 0;
    if (!mud) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = (size_t)y * w + x;
                int in = liq[i] > 0, e = 0;
                if (x > 0 && (liq[i - 1] > 0) != in) e = 1;
                if (x < w - 1 && (liq[i + 1] > 0) != in) e = 1;
                if (y > 0 && (liq[i - w] > 0) != in) e = 1;
                if (y < h - 1 && (liq[i + w] > 0) != in) e = 1;
                edge[i] = (uint8_t)e;
            }
        chamfer(edge, dist, w, h);
        for (size_t i = 0; i < np; i++) dist[i] = fminf(dist[i], 20.0f);
        if ((st = box3(dist, w, h, err)) != VT_OK) goto done;
        /* uint8 + equalizeHist */
        size_t hist[256] = {0};
        for (size_t i = 0; i < np; i++) hist[(uint8_t)dist[i]]++;
        size_t cdf[256], acc = 0, cmin = 0;
        for (int v = 0; v < 256; v++) {
            acc += hist[v];
            cdf[v] = acc;
            if (!cmin && acc) cmin = acc;
        }
        for (size_t i = 0; i < np; i++) {
            size_t c = cdf[(uint8_t)dist[i]];
            dist[i] = np > cmin ? (float)floor((double)(c - cmin) * 255.0 / (double)(np - cmin) + 0.5) : 0;
        }
        static const float emboss[9] = {-2, -1, 0, -1, 1, 1, 0, 1, 2};
        if ((st = vt_shift_filter2d(dist, w, h, 1, emboss, 3, 3, VT_BORDER_REFLECT101, err)) != VT_OK) goto done;
        for (size_t i = 0; i < np; i++) dist[i] = (float)(uint8_t)(dist[i] < 0 ? 0 : dist[i] > 255 ? 255 : dist[i]);
        if ((st = box3(dist, w, h, err)) != VT_OK) goto done;
        float mx = 0;
        for (size_t i = 0; i < np; i++) mx = fmaxf(mx, dist[i] = (float)(uint8_t)(liq[i] * 255) * dist[i]);
        static const float water[3] = {175 / 255.f, 238 / 255.f, 238 / 255.f};
        for (size_t i = 0; i < np; i++) {
            float m = mx > 0 ? (float)(dist[i] / mx * kk[s]) : 0;
            for (int c = 0; c < 3; c++) rgb[i * 3 + c] += m * water[c];
        }
    } else {
        for (size_t i = 0; i < np; i++) dist[i] = liq[i] > thr[s] ? 1.0f : 0.0f;
        if ((st = vt_shift_gaussian_blur(dist, w, h, 1, kk[s], 4.0, VT_BORDER_CLAMP, err)) != VT_OK) goto done;
        static const float mudc[3] = {63 / 255.f, 42 / 255.f, 20 / 255.f};
        for (size_t i = 0; i < np; i++) {
            float m = dist[i] < 0.8f ? 0 : dist[i];
            for (int c = 0; c < 3; c++) rgb[i * 3 + c] = rgb[i * 3 + c] * (1 - m) + mudc[c] * m;
        }
    }
done:
    free(liq), free(dist), free(edge);
    return st;
}
