/* pipeline/image: codecs against files written by the libraries' own
 * encoders (libpng's simplified API, libjpeg, libwebp), exact lossless round
 * trips, the decompression-bomb guard, and one clear error per bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jpeglib.h>
#include <png.h>

#include "common/rng.h"
#include "pipeline/image.h"

static vt_image random_image(int w, int h, uint64_t seed) {
    vt_image img;
    assert_int_equal(vt_image_alloc(&img, w, h, NULL), VT_OK);
    vt_rng r;
    vt_rng_init(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.rgb[i] = (uint8_t)vt_rng_u32(&r);
    return img;
}

/* Smooth content (gradients + a disc) so lossy codecs have a fair target. */
static vt_image smooth_image(int w, int h) {
    vt_image img;
    assert_int_equal(vt_image_alloc(&img, w, h, NULL), VT_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            int dx = x - w / 2, dy = y - h / 2;
            int in = dx * dx + dy * dy < (w * w) / 9;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = in ? 200 : 40;
        }
    return img;
}

static double mean_abs_diff(const vt_image *a, const vt_image *b) {
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    double s = 0;
    size_t n = (size_t)a->width * a->height * 3;
    for (size_t i = 0; i < n; i++) s += abs((int)a->rgb[i] - (int)b->rgb[i]);
    return s / (double)n;
}

static void assert_msg_has(const vt_error *e, const char *needle) {
    if (!strstr(e->msg, needle)) fail_msg("error '%s' does not mention '%s'", e->msg, needle);
}

/* --- PNG written by libpng's simplified API (code we did not write) --- */

static uint8_t *png_from_libpng(const void *pixels, int w, int h, png_uint_32 format,
                                const void *colormap, int colormap_entries, size_t *len) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = format;
    im.colormap_entries = (png_uint_32)colormap_entries;
    png_alloc_size_t size = 0;
    assert_true(png_image_write_to_memory(&im, NULL, &size, 0, pixels, 0, colormap));
    uint8_t *buf = malloc(size);
    assert_true(png_image_write_to_memory(&im, buf, &size, 0, pixels, 0, colormap));
    *len = size;
    return buf;
}

static void test_detect(void **state) {
    (void)state;
    const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t jpg[3] = {0xFF, 0xD8, 0xFF};
    const uint8_t webp[12] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
    assert_int_equal(vt_image_detect(png, 8), VT_IMAGE_PNG);
    assert_int_equal(vt_image_detect(png, 7), VT_IMAGE_UNKNOWN);
    assert_int_equal(vt_image_detect(jpg, 3), VT_IMAGE_JPEG);
    assert_int_equal(vt_image_detect(webp, 12), VT_IMAGE_WEBP);
    assert_int_equal(vt_image_detect("GIF89a", 6), VT_IMAGE_UNKNOWN);
    assert_string_equal(vt_image_format_name(VT_IMAGE_WEBP), "webp");
}

static void test_png_roundtrip_exact(void **state) {
    (void)state;
    vt_image img = random_image(37, 23, 1);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vt_image_encode_png(&img, &buf, &len, NULL), VT_OK);
    vt_image_info info;
    assert_int_equal(vt_image_probe(buf, len, "x.png", &info, NULL), VT_OK);
    assert_int_equal(info.format, VT_IMAGE_PNG);
    assert_int_equal(info.width, 37);
    assert_int_equal(info.height, 23);
    assert_false(info.has_alpha);
    /* libpng's own reader agrees with what we wrote. */
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_memory(&im, buf, len));
    im.format = PNG_FORMAT_RGB;
    uint8_t *ref = malloc(PNG_IMAGE_SIZE(im));
    assert_true(png_image_finish_read(&im, NULL, ref, 0, NULL));
    assert_memory_equal(ref, img.rgb, (size_t)37 * 23 * 3);
    free(ref);
    vt_image back;
    assert_int_equal(vt_image_decode(buf, len, "x.png", NULL, &back, NULL), VT_OK);
    assert_int_equal(back.width, 37);
    assert_memory_equal(back.rgb, img.rgb, (size_t)37 * 23 * 3);
    free(buf);
    vt_image_free(&back);
    vt_image_free(&img);
}

static void test_png_variants(void **state) {
    (void)state;
    int w = 19, h = 11;
    /* Grey 8-bit: every channel equals the grey value. */
    uint8_t grey[19 * 11];
    for (int i = 0; i < w * h; i++) grey[i] = (uint8_t)(i * 7);
    size_t len;
    uint8_t *buf = png_from_libpng(grey, w, h, PNG_FORMAT_GRAY, NULL, 0, &len);
    vt_image img;
    assert_int_equal(vt_png_decode(buf, len, "g.png", NULL, &img, NULL), VT_OK);
    for (int i = 0; i < w * h; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(img.rgb[3 * i + c], grey[i]);
    vt_image_free(&img);
    free(buf);

    /* 16-bit linear RGB: libpng stores it as 16-bit with a gAMA of 1.0; the
     * reader scales to 8 bits (no gamma applied), so 65535 -> 255, 0 -> 0. */
    uint16_t deep[19 * 11 * 3];
    for (int i = 0; i < w * h * 3; i++) deep[i] = (uint16_t)((i % 2) ? 65535 : 0);
    buf = png_from_libpng(deep, w, h, PNG_FORMAT_LINEAR_RGB, NULL, 0, &len);
    assert_int_equal(vt_png_decode(buf, len, "d.png", NULL, &img, NULL), VT_OK);
    for (int i = 0; i < w * h * 3; i++) assert_int_equal(img.rgb[i], (i % 2) ? 255 : 0);
    vt_image_free(&img);
    free(buf);

    /* Palette: indices into a 4-colour map. */
    uint8_t map[4 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 99, 199};
    uint8_t idx[19 * 11];
    for (int i = 0; i < w * h; i++) idx[i] = (uint8_t)(i % 4);
    buf = png_from_libpng(idx, w, h, PNG_FORMAT_RGB_COLORMAP, map, 4, &len);
    assert_int_equal(vt_png_decode(buf, len, "p.png", NULL, &img, NULL), VT_OK);
    for (int i = 0; i < w * h; i++) assert_memory_equal(img.rgb + 3 * i, map + 3 * (i % 4), 3);
    vt_image_free(&img);
    free(buf);

    /* RGBA: composited onto white by default, onto the given colour otherwise. */
    uint8_t rgba[19 * 11 * 4];
    for (int i = 0; i < w * h; i++) {
        rgba[4 * i] = 200;
        rgba[4 * i + 1] = 100;
        rgba[4 * i + 2] = 0;
        rgba[4 * i + 3] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : 128);
    }
    buf = png_from_libpng(rgba, w, h, PNG_FORMAT_RGBA, NULL, 0, &len);
    vt_image_info info;
    assert_int_equal(vt_image_probe(buf, len, "a.png", &info, NULL), VT_OK);
    assert_true(info.has_alpha);
    assert_int_equal(vt_png_decode(buf, len, "a.png", NULL, &img, NULL), VT_OK);
    vt_decode_opts black = vt_decode_opts_default();
    memset(black.background, 0, 3);
    vt_image img2;
    assert_int_equal(vt_image_decode(buf, len, "a.png", &black, &img2, NULL), VT_OK);
    for (int i = 0; i < w * h; i++) {
        unsigned a = rgba[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            unsigned v = rgba[4 * i + c];
            assert_int_equal(img.rgb[3 * i + c], (a * v + (255 - a) * 255 + 127) / 255);
            assert_int_equal(img2.rgb[3 * i + c], (a * v + 127) / 255);
        }
    }
    vt_image_free(&img);
    vt_image_free(&img2);
    free(buf);
}

/* --- JPEG written by libjpeg --- */

static uint8_t *jpeg_from_libjpeg(const vt_image *img, int quality, int grey, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = (JDIMENSION)img->width;
    c.image_height = (JDIMENSION)img->height;
    c.input_components = grey ? 1 : 3;
    c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)img->width * 3);
    while (c.next_scanline < c.image_height) {
        const uint8_t *src = img->rgb + (size_t)c.next_scanline * img->width * 3;
        if (grey)
            for (int x = 0; x < img->width; x++) row[x] = src[3 * x + 1];
        else
            memcpy(row, src, (size_t)img->width * 3);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    uint8_t *buf = malloc(n);
    memcpy(buf, out, n);
    free(out);
    *len = n;
    return buf;
}

static void test_jpeg_decode(void **state) {
    (void)state;
    vt_image src = smooth_image(64, 48);
    size_t len;
    uint8_t *buf = jpeg_from_libjpeg(&src, 95, 0, &len);
    vt_image_info info;
    assert_int_equal(vt_image_probe(buf, len, "x.jpg", &info, NULL), VT_OK);
    assert_int_equal(info.format, VT_IMAGE_JPEG);
    assert_int_equal(info.width, 64);
    assert_int_equal(info.height, 48);
    vt_image img;
    assert_int_equal(vt_image_decode(buf, len, "x.jpg", NULL, &img, NULL), VT_OK);
    double mad = mean_abs_diff(&src, &img);
    print_message("jpeg q95 mean abs diff %.3f\n", mad);
    assert_true(mad < 4.0); /* measured 3.2: chroma subsampling at the disc edge */
    vt_image_free(&img);
    free(buf);

    buf = jpeg_from_libjpeg(&src, 95, 1, &len);
    assert_int_equal(vt_image_decode(buf, len, "g.jpg", NULL, &img, NULL), VT_OK);
    for (int i = 0; i < 64 * 48; i++) {
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 1]);
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 2]);
        assert_true(abs((int)img.rgb[3 * i] - (int)src.rgb[3 * i + 1]) <= 8);
    }
    vt_image_free(&img);
    free(buf);
    vt_image_free(&src);
}

/* --- WebP --- */

static void test_webp_roundtrip(void **state) {
    (void)state;
    vt_image img = random_image(41, 29, 2);
    uint8_t *buf;
    size_t len;
    assert_int_equal(vt_image_encode_webp(&img, 75, true, &buf, &len, NULL), VT_OK);
    vt_image_info info;
    assert_int_equal(vt_image_probe(buf, len, "l.webp", &info, NULL), VT_OK);
    assert_int_equal(info.format, VT_IMAGE_WEBP);
    assert_true(info.lossless);
    vt_image back;
    assert_int_equal(vt_image_decode(buf, len, "l.webp", NULL, &back, NULL), VT_OK);
    assert_memory_equal(back.rgb, img.rgb, (size_t)41 * 29 * 3);
    vt_image_free(&back);

    /* Straight into a strided batch buffer: padding bytes stay untouched. */
    size_t stride = 41 * 3 + 5;
    uint8_t *batch = malloc(stride * 29);
    memset(batch, 0xAB, stride * 29);
    assert_int_equal(vt_webp_decode_into(buf, len, "l.webp", NULL, batch, stride, 41, 29, NULL),
                     VT_OK);
    for (int y = 0; y < 29; y++) {
        assert_memory_equal(batch + y * stride, img.rgb + (size_t)y * 41 * 3, 41 * 3);
        for (size_t k = 41 * 3; k < stride; k++) assert_int_equal(batch[y * stride + k], 0xAB);
    }
    vt_error e = {0};
    assert_int_equal(vt_webp_decode_into(buf, len, "rec 7", NULL, batch, stride, 40, 29, &e),
                     VT_ERR_FORMAT);
    assert_msg_has(&e, "rec 7: WebP is 41x29, expected 40x29");
    free(batch);
    free(buf);
    vt_image_free(&img);

    /* Lossy on smooth content: close, and quality orders the error. */
    vt_image s = smooth_image(96, 64);
    uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    assert_int_equal(vt_image_encode_webp(&s, 30, false, &lo, &lo_len, NULL), VT_OK);
    assert_int_equal(vt_image_encode_webp(&s, 95, false, &hi, &hi_len, NULL), VT_OK);
    assert_true(lo_len < hi_len);
    vt_image a, b;
    assert_int_equal(vt_image_decode(lo, lo_len, "lo", NULL, &a, NULL), VT_OK);
    assert_int_equal(vt_image_decode(hi, hi_len, "hi", NULL, &b, NULL), VT_OK);
    double mad_lo = mean_abs_diff(&s, &a), mad_hi = mean_abs_diff(&s, &b);
    print_message("webp q30 %.3f (%zu B), q95 %.3f (%zu B)\n", mad_lo, lo_len, mad_hi, hi_len);
    assert_true(mad_hi < 3.5); /* measured 2.6 */
    assert_true(mad_hi < mad_lo);
    assert_int_equal(vt_image_probe(hi, hi_len, "hi", &info, NULL), VT_OK);
    assert_false(info.lossless);
    vt_image_free(&a);
    vt_image_free(&b);
    free(lo);
    free(hi);
    vt_image_free(&s);

    vt_error e2 = {0};
    assert_int_equal(vt_image_encode_webp(&img, 101, false, &buf, &len, &e2), VT_ERR_ARG);
}

/* --- bad inputs: each gives VT_ERR_FORMAT/RANGE with a message naming it --- */

static void expect_decode_error(const void *data, size_t len, const char *name, vt_status code,
                                const char *needle) {
    vt_image img = {0};
    vt_error e = {0};
    vt_status st = vt_image_decode(data, len, name, NULL, &img, &e);
    if (st != code) fail_msg("%s: got status %d (%s), expected %d", name, st, e.msg, code);
    assert_null(img.rgb);
    assert_msg_has(&e, name);
    assert_msg_has(&e, needle);
}

static void test_bad_bytes(void **state) {
    (void)state;
    expect_decode_error("", 0, "empty.png", VT_ERR_FORMAT, "empty image (0 bytes)");
    expect_decode_error("GIF89a....", 10, "x.gif", VT_ERR_FORMAT, "not a PNG, JPEG or WebP");

    vt_image img = random_image(32, 32, 3);
    uint8_t *buf;
    size_t len;
    /* PNG: cut in the middle of IDAT, and a flipped byte inside IDAT (CRC). */
    assert_int_equal(vt_image_encode_png(&img, &buf, &len, NULL), VT_OK);
    expect_decode_error(buf, len / 2, "cut.png", VT_ERR_FORMAT, "truncated PNG");
    expect_decode_error(buf, 20, "head.png", VT_ERR_FORMAT, "truncated PNG");
    buf[len / 2] ^= 0x55;
    expect_decode_error(buf, len, "bad.png", VT_ERR_FORMAT, "corrupt PNG");
    free(buf);

    /* JPEG: cut mid-scan, and a header whose first marker is garbage. */
    vt_image s = smooth_image(64, 64);
    buf = jpeg_from_libjpeg(&s, 90, 0, &len);
    expect_decode_error(buf, len * 2 / 3, "cut.jpg", VT_ERR_FORMAT, "truncated JPEG");
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) { sof = i; break; }
    assert_true(sof > 0);
    buf[sof + 4] = 3; /* sample precision 3 bits: no such JPEG */
    expect_decode_error(buf, len, "junk.jpg", VT_ERR_FORMAT, "corrupt JPEG");
    free(buf);

    /* WebP: cut bitstream, and a damaged chunk tag. */
    assert_int_equal(vt_image_encode_webp(&s, 80, false, &buf, &len, NULL), VT_OK);
    expect_decode_error(buf, len / 2, "cut.webp", VT_ERR_FORMAT, "truncated WebP");
    expect_decode_error(buf, 14, "head.webp", VT_ERR_FORMAT, "WebP");
    memcpy(buf + 12, "XXXX", 4);
    expect_decode_error(buf, len, "bad.webp", VT_ERR_FORMAT, "corrupt WebP");
    free(buf);
    vt_image_free(&s);
    vt_image_free(&img);
}

/* CRC-32 (PNG's polynomial) for hand-made chunks. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_decompression_bombs(void **state) {
    (void)state;
    /* PNG whose valid IHDR claims 100000 x 100000 (10^10 pixels, 30 GB of RGB). */
    uint8_t png[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *c = png + 8;
    put32(c, 13);
    memcpy(c + 4, "IHDR", 4);
    put32(c + 8, 100000);
    put32(c + 12, 100000);
    c[16] = 8; /* depth */
    c[17] = 2; /* RGB */
    c[18] = c[19] = c[20] = 0;
    put32(c + 21, crc32_png(c + 4, 17));
    vt_image_info info;
    assert_int_equal(vt_image_probe(png, sizeof png, "bomb.png", &info, NULL), VT_OK);
    assert_int_equal(info.width, 100000);
    expect_decode_error(png, sizeof png, "bomb.png", VT_ERR_RANGE,
                        "header claims 100000x100000 = 10000000000 pixels");

    /* JPEG: a real 8x8 file with its SOF0 size patched to 65000 x 65000. */
    vt_image tiny = smooth_image(8, 8);
    size_t len;
    uint8_t *jpg = jpeg_from_libjpeg(&tiny, 90, 0, &len);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) { sof = i; break; }
    assert_true(sof > 0);
    jpg[sof + 5] = 0xFD; jpg[sof + 6] = 0xE8; /* height 65000 */
    jpg[sof + 7] = 0xFD; jpg[sof + 8] = 0xE8; /* width 65000 */
    expect_decode_error(jpg, len, "bomb.jpg", VT_ERR_RANGE, "65000x65000");
    free(jpg);

    /* WebP lossless: VP8L header patched to its maximum 16384 x 16384. */
    uint8_t *wp;
    assert_int_equal(vt_image_encode_webp(&tiny, 50, true, &wp, &len, NULL), VT_OK);
    assert_memory_equal(wp + 12, "VP8L", 4);
    /* byte 20 = 0x2f signature, then 14 bits width-1, 14 bits height-1 (LSB first). */
    uint32_t bits = (16383u) | (16383u << 14) | ((uint32_t)(wp[24] >> 4) << 28);
    wp[21] = (uint8_t)bits;
    wp[22] = (uint8_t)(bits >> 8);
    wp[23] = (uint8_t)(bits >> 16);
    wp[24] = (uint8_t)(bits >> 24);
    expect_decode_error(wp, len, "bomb.webp", VT_ERR_RANGE, "16384x16384");
    vt_error e = {0};
    vt_image img;
    assert_int_equal(vt_webp_decode_into(wp, len, "bomb.webp", NULL, tiny.rgb, 24, 8, 8, &e),
                     VT_ERR_FORMAT);
    free(wp);

    /* The limit is configurable: an 8x8 image against a 63-pixel limit. */
    vt_decode_opts o = vt_decode_opts_default();
    o.max_pixels = 63;
    uint8_t *p;
    assert_int_equal(vt_image_encode_png(&tiny, &p, &len, NULL), VT_OK);
    assert_int_equal(vt_image_decode(p, len, "small.png", &o, &img, &e), VT_ERR_RANGE);
    o.max_pixels = 64;
    assert_int_equal(vt_image_decode(p, len, "small.png", &o, &img, &e), VT_OK);
    vt_image_free(&img);
    free(p);
    vt_image_free(&tiny);
}

/* --- geometry --- */

static void test_fit_geometry(void **state) {
    (void)state;
    /* 4x2 -> pad to 4: rows 0 and 3 are the CLIP mean, rows 1-2 the image
     * (a same-size resize is the identity). */
    vt_image src = random_image(4, 2, 4);
    vt_image out;
    assert_int_equal(vt_image_fit_square(&src, 4, VT_FIT_PAD, NULL, &out, NULL), VT_OK);
    assert_int_equal(out.width, 4);
    assert_int_equal(out.height, 4);
    for (int x = 0; x < 4; x++) {
        assert_memory_equal(out.rgb + 3 * x, VT_CLIP_MEAN_RGB, 3);
        assert_memory_equal(out.rgb + 3 * (12 + x), VT_CLIP_MEAN_RGB, 3);
    }
    assert_memory_equal(out.rgb + 12, src.rgb, 24);
    vt_image_free(&out);
    /* Crop to 2: short side already 2, so columns 1..2 of the source. */
    assert_int_equal(vt_image_fit_square(&src, 2, VT_FIT_CROP, NULL, &out, NULL), VT_OK);
    assert_memory_equal(out.rgb, src.rgb + 3, 6);
    assert_memory_equal(out.rgb + 6, src.rgb + 12 + 3, 6);
    vt_image_free(&out);
    vt_image_free(&src);

    /* A constant image stays constant through any resize (weights sum to 1). */
    vt_image flat;
    assert_int_equal(vt_image_alloc(&flat, 333, 97, NULL), VT_OK);
    const uint8_t col[3] = {17, 201, 99};
    vt_image_fill(&flat, col);
    int sizes[][2] = {{1, 1}, {50, 13}, {333, 97}, {1000, 300}, {7, 400}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        assert_int_equal(vt_image_resize(&flat, sizes[k][0], sizes[k][1], &out, NULL), VT_OK);
        for (size_t i = 0; i < (size_t)out.width * out.height; i++)
            assert_memory_equal(out.rgb + 3 * i, col, 3);
        vt_image_free(&out);
    }
    vt_image_free(&flat);

    vt_error e = {0};
    vt_fit_mode m;
    assert_int_equal(vt_fit_mode_parse("crop", &m, &e), VT_OK);
    assert_int_equal(m, VT_FIT_CROP);
    assert_int_equal(vt_fit_mode_parse("stretch", &m, &e), VT_ERR_ARG);
    assert_msg_has(&e, "stretch");
    vt_image small = random_image(3, 3, 5);
    assert_int_equal(vt_image_crop(&small, 2, 0, 2, 2, &out, &e), VT_ERR_RANGE);
    assert_int_equal(vt_image_resize(&small, 0, 5, &out, &e), VT_ERR_ARG);
    vt_image_free(&small);
}

static void test_load_and_save(void **state) {
    (void)state;
    const char *tmp = getenv("VT_TEST_TMP");
    if (!tmp) tmp = "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/saved.png", tmp);
    vt_image img = random_image(10, 6, 6), back;
    assert_int_equal(vt_image_save_png(&img, path, NULL), VT_OK);
    assert_int_equal(vt_image_load(path, NULL, &back, NULL), VT_OK);
    assert_memory_equal(back.rgb, img.rgb, 10 * 6 * 3);
    vt_image_free(&back);
    snprintf(path, sizeof path, "%s/saved.webp", tmp);
    assert_int_equal(vt_image_save_webp(&img, path, 50, true, NULL), VT_OK);
    assert_int_equal(vt_image_load(path, NULL, &back, NULL), VT_OK);
    assert_memory_equal(back.rgb, img.rgb, 10 * 6 * 3);
    vt_image_free(&back);
    vt_error e = {0};
    snprintf(path, sizeof path, "%s/missing.png", tmp);
    assert_int_equal(vt_image_load(path, NULL, &back, &e), VT_ERR_IO);
    assert_msg_has(&e, "missing.png");
    snprintf(path, sizeof path, "%s/empty.png", tmp);
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(vt_image_load(path, NULL, &back, &e), VT_ERR_FORMAT);
    assert_msg_has(&e, "empty.png: empty image (0 bytes)");
    vt_image_free(&img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_png_roundtrip_exact),
        cmocka_unit_test(test_png_variants),
        cmocka_unit_test(test_jpeg_decode),
        cmocka_unit_test(test_webp_roundtrip),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_decompression_bombs),
        cmocka_unit_test(test_fit_geometry),
        cmocka_unit_test(test_load_and_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
