/* Image primitives shared by the visual shifts: border handling, separable
 * Gaussian and 2D filtering, bilinear/box/bicubic resampling, HSV and the
 * plasma fractal. Semantics follow the libraries ImageNet-C called (scipy,
 * skimage, OpenCV, PIL) so the severity tables mean what they meant there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

int vt_shift_border_index(int i, int n, vt_border b) {
    if (i >= 0 && i < n) return i;
    if (n == 1) return 0;
    switch (b) {
    case VT_BORDER_CLAMP:
        return i < 0 ? 0 : n - 1;
    case VT_BORDER_REFLECT: {
        long p = 2L * n, m = ((long)i % p + p) % p;
        return (int)(m < n ? m : p - 1 - m);
    }
    case VT_BORDER_REFLECT101:
    default: {
        long p = 2L * n - 2, m = ((long)i % p + p) % p;
        return (int)(m < n ? m : p - m);
    }
    }
}

vt_status vt_shift_gaussian_blur(float *img, int w, int h, int c, double sigma, double truncate, vt_border b,
                                 vt_error *err) {
    if (sigma <= 0) return VT_OK;
    int r = (int)(truncate * sigma + 0.5);
    int kn = 2 * r + 1;
    double *k = malloc(sizeof(double) * (size_t)kn);
    int maxside = w > h ? w : h;
    double *line = malloc(sizeof(double) * (size_t)maxside * (size_t)c);
    int *idx = malloc(sizeof(int) * ((size_t)maxside + (size_t)kn));
    if (!k || !line || !idx) {
        free(k), free(line), free(idx);
        return vt_fail(err, VT_ERR_NOMEM, "gaussian blur: out of memory");
    }
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i < kn; i++) k[i] /= sum;
    /* Rows, then columns. */
    for (int i = 0; i < w + kn - 1; i++) idx[i] = vt_shift_border_index(i - r, w, b);
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w * c;
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int j = 0; j < kn; j++) acc += k[j] * row[(size_t)idx[x + j] * c + ch];
                line[(size_t)x * c + ch] = acc;
            }
        for (int i = 0; i < w * c; i++) row[i] = (float)line[i];
    }
    for (int i = 0; i < h + kn - 1; i++) idx[i] = vt_shift_border_index(i - r, h, b);
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int j = 0; j < kn; j++) acc += k[j] * img[((size_t)idx[y + j] * w + x) * c + ch];
                line[(size_t)y * c + ch] = acc;
            }
        for (int y = 0; y < h; y++)
            for (int ch = 0; ch < c; ch++) img[((size_t)y * w + x) * c + ch] = (float)line[(size_t)y * c + ch];
    }
    free(k), free(line), free(idx);
    return VT_OK;
}

vt_status vt_shift_filter2d(float *img, int w, int h, int c, const float *k, int kw, int kh, vt_border b,
                            vt_error *err) {
    size_t n = (size_t)w * h * c;
    float *src = malloc(sizeof(float) * n);
    if (!src) return vt_fail(err, VT_ERR_NOMEM, "filter: out of memory");
    memcpy(src, img, sizeof(float) * n);
    int rx = kw / 2, ry = kh / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int j = 0; j < kh; j++) {
                    int sy = vt_shift_border_index(y + j - ry, h, b);
                    const float *srow = src + (size_t)sy * w * c;
                    const float *krow = k + (size_t)j * kw;
                    for (int i = 0; i < kw; i++) {
                        if (krow[i] == 0) continue;
                        acc += krow[i] * srow[(size_t)vt_shift_border_index(x + i - rx, w, b) * c + ch];
                    }
                }
                img[((size_t)y * w + x) * c + ch] = (float)acc;
            }
    free(src);
    return VT_OK;
}

void vt_shift_sample_bilinear(const float *img, int w, int h, int c, double x, double y, vt_border b, float *out) {
    double fx = floor(x), fy = floor(y);
    double ax = x - fx, ay = y - fy;
    int x0 = vt_shift_border_index((int)fx, w, b), x1 = vt_shift_border_index((int)fx + 1, w, b);
    int y0 = vt_shift_border_index((int)fy, h, b), y1 = vt_shift_border_index((int)fy + 1, h, b);
    for (int ch = 0; ch < c; ch++) {
        double p00 = img[((size_t)y0 * w + x0) * c + ch], p01 = img[((size_t)y0 * w + x1) * c + ch];
        double p10 = img[((size_t)y1 * w + x0) * c + ch], p11 = img[((size_t)y1 * w + x1) * c + ch];
        out[ch] = (float)((1 - ay) * ((1 - ax) * p00 + ax * p01) + ay * ((1 - ax) * p10 + ax * p11));
    }
}

void vt_shift_zoom_center(const float *src, float *dst, int w, int h, int c, double z) {
    double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            vt_shift_sample_bilinear(src, w, h, c, cx + (x - cx) / z, cy + (y - cy) / z, VT_BORDER_CLAMP,
                                     dst + ((size_t)y * w + x) * c);
}

/* Separable resampling with precomputed per-output-pixel weights: the PIL
 * design (filter support scaled by the downscale factor). */
typedef double (*filter_fn)(double);
static double filter_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; } /* PIL: (-.5, .5] */
static double filter_bicubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static vt_status resample_axis(const float *src, int sn, float *dst, int dn, int count, int stride_elem,
                               int c, filter_fn f, double support, vt_error *err) {
    /* Resamples along one axis: element k of line l is at src[(l + k*stride) ...]. */
    (void)count;
    double scale = (double)sn / dn;
    double fscale = scale > 1 ? scale : 1;
    double sup = support * fscale;
    int kmax = (int)ceil(sup) * 2 + 1;
    double *wts = malloc(sizeof(double) * (size_t)kmax * dn);
    int *start = malloc(sizeof(int) * (size_t)dn), *len = malloc(sizeof(int) * (size_t)dn);
    if (!wts || !start || !len) {
        free(wts), free(start), free(len);
        return vt_fail(err, VT_ERR_NOMEM, "resize: out of memory");
    }
    for (int i = 0; i < dn; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)floor(center - sup + 0.5), hi = (int)floor(center + sup + 0.5);
        if (lo < 0) lo = 0;
        if (hi > sn) hi = sn;
        if (hi - lo > kmax) hi = lo + kmax;
        double tot = 0;
        for (int j = lo; j < hi; j++) tot += wts[(size_t)i * kmax + (j - lo)] = f((j - center + 0.5) / fscale);
        for (int j = lo; j < hi; j++) wts[(size_t)i * kmax + (j - lo)] /= tot != 0 ? tot : 1;
        start[i] = lo, len[i] = hi - lo;
    }
    (void)stride_elem;
    for (int i = 0; i < dn; i++)
        for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            for (int j = 0; j < len[i]; j++) acc += wts[(size_t)i * kmax + j] * src[(size_t)(start[i] + j) * c + ch];
            dst[(size_t)i * c + ch] = (float)acc;
        }
    free(wts), free(start), free(len);
    return VT_OK;
}

static vt_status resize_sep(const float *src, int sw, int sh, float *dst, int dw, int dh, int c, filter_fn f,
                            double support, vt_error *err) {
    /* Horizontal pass into tmp (dw x sh), then vertical via transposed lines. */
    float *tmp = malloc(sizeof(float) * (size_t)dw * sh * c);
    float *col = malloc(sizeof(float) * (size_t)sh * c), *ocol = malloc(sizeof(float) * (size_t)dh * c);
    vt_status st = VT_OK;
    if (!tmp || !col || !ocol) {
        st = vt_fail(err, VT_ERR_NOMEM, "resize: out of memory");
        goto done;
    }
    for (int y = 0; y < sh && st == VT_OK; y++)
        st = resample_axis(src + (size_t)y * sw * c, sw, tmp + (size_t)y * dw * c, dw, 1, 1, c, f, support, err);
    for (int x = 0; x < dw && st == VT_OK; x++) {
        for (int y = 0; y < sh; y++) memcpy(col + (size_t)y * c, tmp + ((size_t)y * dw + x) * c, sizeof(float) * c);
        st = resample_axis(col, sh, ocol, dh, 1, 1, c, f, support, err);
        for (int y = 0; y < dh; y++) memcpy(dst + ((size_t)y * dw + x) * c, ocol + (size_t)y * c, sizeof(float) * c);
    }
done:
    free(tmp), free(col), free(ocol);
    return st;
}

vt_status vt_shift_resize_box(const float *src, int sw, int sh, float *dst, int dw, int dh, int c, vt_error *err) {
    return resize_sep(src, sw, sh, dst, dw, dh, c, filter_box, 0.5, err);
}

vt_status vt_shift_resize_bicubic(const float *src, int sw, int sh, float *dst, int dw, int dh, int c,
                                  vt_error *err) {
    return resize_sep(src, sw, sh, dst, dw, dh, c, filter_bicubic, 2.0, err);
}

vt_status vt_shift_motion_blur(float *img, int w, int h, int c, double radius, double sigma, double angle_deg,
                               vt_error *err) {
    int width = (int)(2 * radius + 1);
    size_t n = (size_t)w * h * c;
    float *src = malloc(sizeof(float) * n);
    double *k = malloc(sizeof(double) * (size_t)width);
    if (!src || !k) {
        free(src), free(k);
        return vt_fail(err, VT_ERR_NOMEM, "motion blur: out of memory");
    }
    memcpy(src, img, sizeof(float) * n);
    memset(img, 0, sizeof(float) * n);
    double sum = 0;
    for (int i = 0; i < width; i++) sum += k[i] = exp(-(double)i * i / (2 * sigma * sigma));
    for (int i = 0; i < width; i++) k[i] /= sum;
    double a = angle_deg * M_PI / 180.0;
    double py = width * sin(a), px = width * cos(a), hyp = hypot(py, px);
    for (int i = 0; i < width; i++) {
        int dy = -(int)ceil(i * py / hyp - 0.5), dx = -(int)ceil(i * px / hyp - 0.5);
        if (abs(dy) >= h || abs(dx) >= w) break;
        /* Each tap is the image shifted by (dx, dy), edges replicated. */
        for (int y = 0; y < h; y++) {
            int sy = vt_shift_border_index(y - dy, h, VT_BORDER_CLAMP);
            for (int x = 0; x < w; x++) {
                int sx = vt_shift_border_index(x - dx, w, VT_BORDER_CLAMP);
                const float *s = src + ((size_t)sy * w + sx) * c;
                float *d = img + ((size_t)y * w + x) * c;
                for (int ch = 0; ch < c; ch++) d[ch] += (float)(k[i] * s[ch]);
            }
        }
    }
    free(src), free(k);
    return VT_OK;
}

/* skimage rgb2hsv / hsv2rgb (H, S, V in [0,1]). */
void vt_shift_rgb_to_hsv(const float *rgb, float *hsv) {
    float r = rgb[0], g = rgb[1], b = rgb[2];
    float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
    float hh = 0;
    if (d > 0) {
        if (mx == r) hh = (g - b) / d;
        else if (mx == g) hh = 2 + (b - r) / d;
        else hh = 4 + (r - g) / d;
        hh /= 6;
        if (hh < 0) hh += 1;
    }
    hsv[0] = hh;
    hsv[1] = mx > 0 ? d / mx : 0;
    hsv[2] = mx;
}

void vt_shift_hsv_to_rgb(const float *hsv, float *rgb) {
    float hh = hsv[0] * 6, s = hsv[1], v = hsv[2];
    int i = (int)floorf(hh);
    float f = hh - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    switch (((i % 6) + 6) % 6) {
    case 0: rgb[0] = v, rgb[1] = t, rgb[2] = p; break;
    case 1: rgb[0] = q, rgb[1] = v, rgb[2] = p; break;
    case 2: rgb[0] = p, rgb[1] = v, rgb[2] = t; break;
    case 3: rgb[0] = p, rgb[1] = q, rgb[2] = v; break;
    case 4: rgb[0] = t, rgb[1] = p, rgb[2] = v; break;
    default: rgb[0] = v, rgb[1] = p, rgb[2] = q; break;
    }
}

int vt_shift_plasma_size(int w, int h) {
    int m = w > h ? w : h, s = 256;
    while (s < m) s *= 2;
    return s;
}

/* ImageNet-C's plasma_fractal: diamond-square on a torus. The displacement
 * is wibble * U(-wibble, wibble) (wibble squared, a quirk kept on purpose:
 * it is what the fog severities were tuned against). */
vt_status vt_shift_plasma(float *map, int size, double decay, vt_rng *rng, vt_error *err) {
    (void)err;
    double *m = calloc((size_t)size * size, sizeof(double));
    if (!m) return vt_fail(err, VT_ERR_NOMEM, "plasma fractal: out of memory");
#define M(y, x) m[(size_t)(((y) % size + size) % size) * size + (((x) % size + size) % size)]
    double wibble = 100;
    for (int step = size; step >= 2; step /= 2) {
        int half = step / 2;
        /* squares: centre = mean of 4 corners + noise */
        for (int y = 0; y < size; y += step)
            for (int x = 0; x < size; x += step) {
                double s = M(y, x) + M(y + step, x) + M(y, x + step) + M(y + step, x + step);
                M(y + half, x + half) = s / 4 + wibble * (2 * vt_rng_uniform_double(rng) - 1) * wibble;
            }
        /* diamonds: edge midpoints from the two corners and two centres */
        for (int y = 0; y < size; y += step)
            for (int x = 0; x < size; x += step) {
                double top = M(y, x) + M(y, x + step) + M(y + half, x + half) + M(y - half, x + half);
                M(y, x + half) = top / 4 + wibble * (2 * vt_rng_uniform_double(rng) - 1) * wibble;
                double left = M(y, x) + M(y + step, x) + M(y + half, x + half) + M(y + half, x - half);
                M(y + half, x) = left / 4 + wibble * (2 * vt_rng_uniform_double(rng) - 1) * wibble;
            }
        wibble /= decay;
    }
#undef M
    double lo = m[0], hi = m[0];
    for (size_t i = 0; i < (size_t)size * size; i++) lo = fmin(lo, m[i]), hi = fmax(hi, m[i]);
    for (size_t i = 0; i < (size_t)size * size; i++) map[i] = (float)(hi > lo ? (m[i] - lo) / (hi - lo) : 0);
    free(m);
    return VT_OK;
}
