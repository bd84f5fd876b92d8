/* Resizing and square fitting. The filter is a separable triangle whose
 * support grows with the downscale factor (antialiased bilinear), with the
 * same coefficient rule as PIL's ImagingResample and PyTorch's
 * interpolate(antialias=True), so results can be checked against PyTorch.
 * A plain (non-antialiased) bilinear downscale would alias: at 1000->336 it
 * reads only 4 of every ~9 source pixels per output pixel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/image.h"

/* For each output index: the first contributing source index, how many
 * contribute, and their normalised weights (ksize slots per output). */
typedef struct coeffs {
    int *start, *count;
    float *w;
    int ksize;
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->start);
    free(c->count);
    free(c->w);
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int coeffs_init(coeffs *c, int in, int out) {
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale; /* triangle support is 1 */
    c->ksize = (int)ceil(support) * 2 + 1;
    c->start = malloc((size_t)out * sizeof *c->start);
    c->count = malloc((size_t)out * sizeof *c->count);
    c->w = calloc((size_t)out * (size_t)c->ksize, sizeof *c->w);
    if (!c->start || !c->count || !c->w) {
        coeffs_free(c);
        return 0;
    }
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        if (n > c->ksize) n = c->ksize;
        float *w = c->w + (size_t)i * (size_t)c->ksize;
        double total = 0.0;
        for (int k = 0; k < n; k++) {
            double v = triangle((k + lo - center + 0.5) / filterscale);
            w[k] = (float)v;
            total += v;
        }
        if (total > 0.0)
            for (int k = 0; k < n; k++) w[k] = (float)(w[k] / total);
        c->start[i] = lo;
        c->count[i] = n;
    }
    return 1;
}

static uint8_t clamp_round(float v) {
    if (v <= 0.0f) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

vt_status vt_image_resize(const vt_image *src, int width, int height, vt_image *dst,
                          vt_error *err) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (!src->rgb || src->width <= 0 || src->height <= 0)
        return vt_fail(err, VT_ERR_ARG, "resize: empty source image");
    if (width <= 0 || height <= 0)
        return vt_fail(err, VT_ERR_ARG, "resize: target size %dx%d must be positive", width, height);
    coeffs cx = {0}, cy = {0};
    float *mid = NULL; /* src->height rows of width*3 floats: after the horizontal pass */
    vt_image out = {0};
    vt_status st = vt_image_alloc(&out, width, height, err);
    if (st != VT_OK) return st;
    size_t mid_row = (size_t)width * 3;
    mid = malloc((size_t)src->height * mid_row * sizeof *mid);
    if (!mid || !coeffs_init(&cx, src->width, width) || !coeffs_init(&cy, src->height, height)) {
        free(mid);
        coeffs_free(&cx);
        vt_image_free(&out);
        return vt_fail(err, VT_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", src->width,
                       src->height, width, height);
    }
    for (int y = 0; y < src->height; y++) {
        const uint8_t *row = src->rgb + (size_t)y * (size_t)src->width * 3;
        float *m = mid + (size_t)y * mid_row;
        for (int x = 0; x < width; x++) {
            const float *w = cx.w + (size_t)x * (size_t)cx.ksize;
            const uint8_t *p = row + (size_t)cx.start[x] * 3;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < cx.count[x]; k++, p += 3) {
                r += w[k] * p[0];
                g += w[k] * p[1];
                b += w[k] * p[2];
            }
            m[3 * x] = r;
            m[3 * x + 1] = g;
            m[3 * x + 2] = b;
        }
    }
    for (int y = 0; y < height; y++) {
        const float *w = cy.w + (size_t)y * (size_t)cy.ksize;
        const float *base = mid + (size_t)cy.start[y] * mid_row;
        uint8_t *d = out.rgb + (size_t)y * mid_row;
        for (size_t i = 0; i < mid_row; i++) {
            float v = 0;
            const float *p = base + i;
            for (int k = 0; k < cy.count[y]; k++, p += mid_row) v += w[k] * *p;
            d[i] = clamp_round(v);
        }
    }
    free(mid);
    coeffs_free(&cx);
    coeffs_free(&cy);
    *dst = out;
    return VT_OK;
}

vt_status vt_image_crop(const vt_image *src, int x, int y, int width, int height, vt_image *dst,
                        vt_error *err) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (x < 0 || y < 0 || width <= 0 || height <= 0 || x > src->width - width ||
        y > src->height - height)
        return vt_fail(err, VT_ERR_RANGE, "crop %dx%d at (%d,%d) is outside the %dx%d image", width,
                       height, x, y, src->width, src->height);
    vt_status st = vt_image_alloc(dst, width, height, err);
    if (st != VT_OK) return st;
    for (int r = 0; r < height; r++)
        memcpy(dst->rgb + (size_t)r * (size_t)width * 3,
               src->rgb + ((size_t)(y + r) * (size_t)src->width + (size_t)x) * 3, (size_t)width * 3);
    return VT_OK;
}

vt_status vt_fit_mode_parse(const char *s, vt_fit_mode *mode, vt_error *err) {
    if (!strcmp(s, "pad")) *mode = VT_FIT_PAD;
    else if (!strcmp(s, "crop")) *mode = VT_FIT_CROP;
    else return vt_fail(err, VT_ERR_ARG, "resize mode '%s': expected pad or crop", s);
    return VT_OK;
}

vt_status vt_image_fit_square(const vt_image *src, int size, vt_fit_mode mode,
                              const uint8_t *pad_rgb, vt_image *dst, vt_error *err) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (size <= 0) return vt_fail(err, VT_ERR_ARG, "fit: size %d must be positive", size);
    if (!src->rgb || src->width <= 0 || src->height <= 0)
        return vt_fail(err, VT_ERR_ARG, "fit: empty source image");
    int w = src->width, h = src->height;
    if (w == h) return vt_image_resize(src, size, size, dst, err);
    vt_status st;
    if (mode == VT_FIT_PAD) {
        int side = w > h ? w : h;
        vt_image canvas;
        st = vt_image_alloc(&canvas, side, side, err);
        if (st != VT_OK) return st;
        vt_image_fill(&canvas, pad_rgb ? pad_rgb : VT_CLIP_MEAN_RGB);
        int ox = (side - w) / 2, oy = (side - h) / 2;
        for (int y = 0; y < h; y++)
            memcpy(canvas.rgb + ((size_t)(oy + y) * (size_t)side + (size_t)ox) * 3,
                   src->rgb + (size_t)y * (size_t)w * 3, (size_t)w * 3);
        st = vt_image_resize(&canvas, size, size, dst, err);
        vt_image_free(&canvas);
        return st;
    }
    /* Short side to `size`, long side scaled and truncated (as CLIP's
     * image processor does), then the centre square. */
    int short_side = w < h ? w : h, long_side = w < h ? h : w;
    int long_new = (int)((int64_t)size * long_side / short_side);
    if (long_new < size) long_new = size;
    int rw = w < h ? size : long_new, rh = w < h ? long_new : size;
    vt_image scaled;
    st = vt_image_resize(src, rw, rh, &scaled, err);
    if (st != VT_OK) return st;
    st = vt_image_crop(&scaled, (rw - size) / 2, (rh - size) / 2, size, size, dst, err);
    vt_image_free(&scaled);
    return st;
}
