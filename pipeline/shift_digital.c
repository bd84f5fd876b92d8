/* Digital and geometric corruptions: brightness, contrast, saturate,
 * elastic transform, pixelate and JPEG (ImageNet-C exact parameters), plus
 * the catalog's proposals low_res (area down, bicubic up), rotation (reflect
 * padding) and cutout occlusion. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <setjmp.h>

#include "pipeline/shift_internal.h"

VT_SHIFT_IMAGE_KERNEL(brightness) {
    (void)rng, (void)err;
    static const float dv[5] = {.1f, .2f, .3f, .4f, .5f};
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float hsv[3], *p = rgb + i * 3;
        vt_shift_rgb_to_hsv(p, hsv);
        hsv[2] = fminf(fmaxf(hsv[2] + dv[severity - 1], 0), 1);
        vt_shift_hsv_to_rgb(hsv, p);
    }
    return VT_OK;
}

VT_SHIFT_IMAGE_KERNEL(contrast) {
    (void)rng, (void)err;
    static const double c[5] = {.4, .3, .2, .1, .05};
    double mean[3] = {0, 0, 0};
    size_t np = (size_t)w * h;
    for (size_t i = 0; i < np; i++)
        for (int ch = 0; ch < 3; ch++) mean[ch] += rgb[i * 3 + ch];
    for (int ch = 0; ch < 3; ch++) mean[ch] /= (double)np;
    for (size_t i = 0; i < np; i++)
        for (int ch = 0; ch < 3; ch++)
            rgb[i * 3 + ch] = (float)((rgb[i * 3 + ch] - mean[ch]) * c[severity - 1] + mean[ch]);
    return VT_OK;
}

VT_SHIFT_IMAGE_KERNEL(saturate) {
    (void)rng, (void)err;
    static const float mul[5] = {.3f, .1f, 2, 5, 20}, add[5] = {0, 0, 0, .1f, .2f};
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float hsv[3], *p = rgb + i * 3;
        vt_shift_rgb_to_hsv(p, hsv);
        hsv[1] = fminf(fmaxf(hsv[1] * mul[severity - 1] + add[severity - 1], 0), 1);
        vt_shift_hsv_to_rgb(hsv, p);
    }
    return VT_OK;
}

/* Solves the 2x3 affine A with A*[p;1] = q for three point pairs (Cramer). */
static int affine_from_points(const double p[3][2], const double q[3][2], double A[2][3]) {
    double m[3][3] = {{p[0][0], p[0][1], 1}, {p[1][0], p[1][1], 1}, {p[2][0], p[2][1], 1}};
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if (fabs(det) < 1e-12) return -1;
    for (int r = 0; r < 2; r++)
        for (int col = 0; col < 3; col++) {
            double mm[3][3];
            memcpy(mm, m, sizeof mm);
            for (int i = 0; i < 3; i++) mm[i][col] = q[i][r];
            A[r][col] = (mm[0][0] * (mm[1][1] * mm[2][2] - mm[1][2] * mm[2][1]) -
                         mm[0][1] * (mm[1][0] * mm[2][2] - mm[1][2] * mm[2][0]) +
                         mm[0][2] * (mm[1][0] * mm[2][1] - mm[1][1] * mm[2][0])) /
                        det;
        }
    return 0;
}

/* ImageNet-C elastic_transform: a random affine (three control points
 * jittered by +-j), then a displacement field of uniform noise blurred by
 * sigma (reflect, truncate 3) and scaled by alpha, bilinear resampling with
 * reflection. The constants are ImageNet-C's multiples of 244. */
VT_SHIFT_IMAGE_KERNEL(elastic_transform) {
    static const double alpha[5] = {244 * 2, 244 * 2, 244 * .05, 244 * .07, 244 * .12};
    static const double sigma[5] = {244 * .7, 244 * .08, 244 * .01, 244 * .01, 244 * .01};
    static const double jit[5] = {244 * .1, 244 * .2, 244 * .02, 244 * .02, 244 * .02};
    int s = severity - 1;
    size_t np = (size_t)w * h, n = np * 3;
    float *warp = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * np), *dy = malloc(sizeof(float) * np);
    vt_status st = VT_OK;
    if (!warp || !dx || !dy) {
        st = vt_fail(err, VT_ERR_NOMEM, "elastic_transform: out of memory");
        goto done;
    }
    double cx = w / 2, cy = h / 2, sq = (w < h ? w : h) / 3;
    double p[3][2] = {{cx + sq, cy + sq}, {cx + sq, cy - sq}, {cx - sq, cy - sq}}, q[3][2], A[2][3], inv[2][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) q[i][j] = p[i][j] + jit[s] * (2 * vt_rng_uniform_double(rng) - 1);
    /* warpAffine maps dst -> src with the inverse of (pts1 -> pts2). */
    if (affine_from_points(q, p, inv) != 0 || affine_from_points(p, q, A) != 0) {
        memcpy(warp, rgb, sizeof(float) * n);
    } else {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                vt_shift_sample_bilinear(rgb, w, h, 3, inv[0][0] * x + inv[0][1] * y + inv[0][2],
                                         inv[1][0] * x + inv[1][1] * y + inv[1][2], VT_BORDER_REFLECT101,
                                         warp + ((size_t)y * w + x) * 3);
    }
    for (size_t i = 0; i < np; i++) dx[i] = (float)(2 * vt_rng_uniform_double(rng) - 1);
    for (size_t i = 0; i < np; i++) dy[i] = (float)(2 * vt_rng_uniform_double(rng) - 1);
    if ((st = vt_shift_gaussian_blur(dx, w, h, 1, sigma[s], 3.0, VT_BORDER_REFLECT, err)) != VT_OK) goto done;
    if ((st = vt_shift_gaussian_blur(dy, w, h, 1, sigma[s], 3.0, VT_BORDER_REFLECT, err)) != VT_OK) goto done;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            vt_shift_sample_bilinear(warp, w, h, 3, x + alpha[s] * dx[i], y + alpha[s] * dy[i], VT_BORDER_REFLECT,
                                     rgb + i * 3);
        }
done:
    free(warp), free(dx), free(dy);
    return st;
}

static vt_status down_up(float *rgb, int w, int h, double f, int bicubic_up, const char *what, vt_error *err) {
    int sw = (int)(w * f), sh = (int)(h * f);
    if (sw < 1) sw = 1;
    if (sh < 1) sh = 1;
    float *small = malloc(sizeof(float) * (size_t)sw * sh * 3);
    if (!small) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", what);
    vt_status st = vt_shift_resize_box(rgb, w, h, small, sw, sh, 3, err);
    if (st == VT_OK)
        st = bicubic_up ? vt_shift_resize_bicubic(small, sw, sh, rgb, w, h, 3, err)
                        : vt_shift_resize_box(small, sw, sh, rgb, w, h, 3, err);
    free(small);
    return st;
}

/* PIL resize to (f*w, f*h) with BOX and back with BOX. */
VT_SHIFT_IMAGE_KERNEL(pixelate) {
    (void)rng;
    static const double f[5] = {.6, .5, .4, .3, .25};
    return down_up(rgb, w, h, f[severity - 1], 0, "pixelate", err);
}

/* Proposal: a low-resolution capture upscaled for the model. */
VT_SHIFT_IMAGE_KERNEL(low_res) {
    (void)rng;
    static const double f[5] = {.5, .35, .25, .18, .125};
    return down_up(rgb, w, h, f[severity - 1], 1, "low_res", err);
}

typedef struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit(j_common_ptr cinfo) {
    jpeg_err *je = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, je->msg);
    longjmp(je->jb, 1);
}

/* The PIL round trip ImageNet-C used: libjpeg defaults (4:2:0, islow DCT) at quality q. */
VT_SHIFT_IMAGE_KERNEL(jpeg_compression) {
    (void)rng;
    static const int quality[5] = {25, 18, 15, 10, 7};
    size_t n = (size_t)w * h * 3;
    uint8_t *px = malloc(n);
    if (!px) return vt_fail(err, VT_ERR_NOMEM, "jpeg_compression: out of memory");
    for (size_t i = 0; i < n; i++) {
        float v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        px[i] = (uint8_t)lrintf(v * 255);
    }
    unsigned char *buf = NULL;
    unsigned long len = 0;
    volatile int stage = 0;
    struct jpeg_compress_struct c;
    struct jpeg_decompress_struct d;
    jpeg_err je;
    memset(&c, 0, sizeof c), memset(&d, 0, sizeof d);
    c.err = jpeg_std_error(&je.mgr);
    d.err = c.err;
    je.mgr.error_exit = jpeg_error_exit;
    if (setjmp(je.jb)) {
        if (stage >= 1) jpeg_destroy_compress(&c);
        if (stage >= 2) jpeg_destroy_decompress(&d);
        free(buf), free(px);
        return vt_fail(err, VT_ERR_FORMAT, "jpeg_compression: libjpeg: %s", je.msg);
    }
    jpeg_create_compress(&c);
    stage = 1;
    jpeg_mem_dest(&c, &buf, &len);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = 3, c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality[severity - 1], TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * w * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_create_decompress(&d);
    stage = 2;
    jpeg_mem_src(&d, buf, len);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    jpeg_start_decompress(&d);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = px + (size_t)d.output_scanline * w * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    jpeg_destroy_compress(&c);
    for (size_t i = 0; i < n; i++) rgb[i] = px[i] / 255.0f;
    free(buf), free(px);
    return VT_OK;
}

/* Proposal: rotation by +-deg about the centre, bilinear, reflect padding. */
VT_SHIFT_IMAGE_KERNEL(rotation) {
    static const double deg[5] = {5, 10, 20, 30, 45};
    double a = deg[severity - 1] * M_PI / 180 * (vt_rng_below(rng, 2) ? 1 : -1);
    size_t n = (size_t)w * h * 3;
    float *src = malloc(sizeof(float) * n);
    if (!src) return vt_fail(err, VT_ERR_NOMEM, "rotation: out of memory");
    memcpy(src, rgb, sizeof(float) * n);
    double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1), ca = cos(a), sa = sin(a);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = x - cx, v = y - cy;
            vt_shift_sample_bilinear(src, w, h, 3, cx + ca * u + sa * v, cy - sa * u + ca * v, VT_BORDER_REFLECT,
                                     rgb + ((size_t)y * w + x) * 3);
        }
    free(src);
    return VT_OK;
}

/* Proposal: `severity` mid-grey squares covering the total area fraction,
 * placed without overlap where possible (50 tries each). */
VT_SHIFT_IMAGE_KERNEL(cutout) {
    (void)err;
    static const double frac[5] = {.05, .10, .20, .30, .40};
    int n = severity, placed = 0, rect[5][4];
    int side = (int)lrint(sqrt(frac[severity - 1] * w * h / n));
    if (side < 1) side = 1;
    if (side > w) side = w;
    if (side > h) side = h;
    for (int k = 0; k < n; k++) {
        int x = 0, y = 0;
        for (int t = 0; t < 50; t++) {
            x = (int)vt_rng_below(rng, (uint64_t)(w - side + 1));
            y = (int)vt_rng_below(rng, (uint64_t)(h - side + 1));
            int ok = 1;
            for (int j = 0; j < placed; j++)
                if (x < rect[j][0] + side && rect[j][0] < x + side && y < rect[j][1] + side && rect[j][1] < y + side)
                    ok = 0;
            if (ok) break;
        }
        rect[placed][0] = x, rect[placed][1] = y, placed++;
        for (int yy = y; yy < y + side; yy++)
            for (int xx = x; xx < x + side; xx++)
                for (int c = 0; c < 3; c++) rgb[((size_t)yy * w + xx) * 3 + c] = 0.5f;
    }
    return VT_OK;
}
