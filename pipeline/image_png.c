/* PNG through libpng: decode from memory (any bit depth, palette, grey,
 * tRNS, interlaced) to 8-bit RGB with alpha composited, and encode 8-bit RGB.
 * libpng reports errors by longjmp; the handlers below turn that into a
 * vt_error that names the file and says whether the data was cut short. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/image.h"

typedef struct png_src {
    const uint8_t *data;
    size_t len, pos;
    int truncated;     /* the reader ran past the end of the data */
    char msg[256];     /* libpng's own error text */
} png_src;

static void on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Ancillary-chunk complaints (bad iCCP, CRC on tEXt) do not stop a decode. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void read_mem(png_structp png, png_bytep out, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        s->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static vt_status png_failure(const png_src *s, const char *name, const char *stage, vt_error *err) {
    if (s->truncated)
        return vt_fail(err, VT_ERR_FORMAT,
                       "%s: truncated PNG: data ends at byte %zu while reading the %s", name, s->len,
                       stage);
    return vt_fail(err, VT_ERR_FORMAT, "%s: corrupt PNG (%s, near byte %zu): %s", name, stage,
                   s->pos, s->msg[0] ? s->msg : "libpng error");
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads IHDR by hand (it must be the first chunk: 8-byte signature, then
 * length 13, "IHDR", width, height, depth, colour type) and scans the chunks
 * before IDAT for tRNS. Needs no libpng state and touches no pixel data, so
 * the bomb check runs before libpng allocates anything. */
static vt_status parse_header(const uint8_t *p, size_t len, const char *name, vt_image_info *info,
                              vt_error *err) {
    memset(info, 0, sizeof *info);
    if (len < 33)
        return vt_fail(err, VT_ERR_FORMAT,
                       "%s: truncated PNG: %zu bytes, too short for the IHDR header", name, len);
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4))
        return vt_fail(err, VT_ERR_FORMAT, "%s: corrupt PNG: first chunk is not a 13-byte IHDR",
                       name);
    uint32_t w = be32(p + 16), h = be32(p + 20);
    int color = p[25];
    if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu)
        return vt_fail(err, VT_ERR_FORMAT, "%s: corrupt PNG: IHDR gives size %ux%u", name, w, h);
    info->format = VT_IMAGE_PNG;
    info->width = (int)w;
    info->height = (int)h;
    info->has_alpha = color == 4 || color == 6;
    info->lossless = true;
    for (size_t off = 33; off + 8 <= len;) {
        uint32_t n = be32(p + off);
        if (!memcmp(p + off + 4, "IDAT", 4) || !memcmp(p + off + 4, "IEND", 4)) break;
        if (!memcmp(p + off + 4, "tRNS", 4)) info->has_alpha = true;
        if (n > len - off - 12) break;
        off += 12 + (size_t)n;
    }
    return VT_OK;
}

/* Both sides up to 2^31-1 pass libpng; our own limit is the pixel count,
 * checked on IHDR before libpng runs. */
static void relax_limits(png_structp png) {
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
}

vt_status vt_png_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                       vt_error *err) {
    return parse_header(data, len, name ? name : "<memory>", info, err);
}

/* The setjmp frame; its arguments are never assigned (longjmp-safe). */
static vt_status decode(const void *data, size_t len, const char *name, const vt_decode_opts *opts,
                        const vt_image_info *hdr, vt_image *out, vt_error *err) {
    png_src src = {.data = data, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
    if (!png) return vt_fail(err, VT_ERR_NOMEM, "%s: cannot create PNG reader", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return vt_fail(err, VT_ERR_NOMEM, "%s: cannot create PNG reader", name);
    }
    /* Everything a longjmp must release lives in volatile locals. */
    uint8_t *volatile pixels = NULL;    /* RGB or RGBA as libpng writes it */
    uint8_t *volatile rgb = NULL;       /* the result */
    png_bytep *volatile rows = NULL;
    const char *volatile stage = "header";
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        if (pixels != rgb) free(pixels);
        free(rgb);
        free(rows);
        return png_failure(&src, name, stage, err);
    }
    relax_limits(png);
    png_set_read_fn(png, &src, read_mem);
    png_read_info(png, info);
    if ((int)png_get_image_width(png, info) != hdr->width ||
        (int)png_get_image_height(png, info) != hdr->height)
        png_error(png, "IHDR changed between reads");
    int depth = png_get_bit_depth(png, info);
    int color = png_get_color_type(png, info);
    if (depth == 16) png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t w = (size_t)hdr->width, h = (size_t)hdr->height;
    if ((channels != 3 && channels != 4) || rowbytes != w * (size_t)channels) {
        png_destroy_read_struct(&png, &info, NULL);
        return vt_fail(err, VT_ERR_FORMAT, "%s: unsupported PNG layout (%d channels, %zu bytes/row)",
                       name, channels, rowbytes);
    }
    rgb = malloc(w * h * 3);
    pixels = channels == 3 ? rgb : malloc(w * h * 4);
    rows = malloc(h * sizeof *rows);
    if (!rgb || !pixels || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        if (pixels != rgb) free(pixels);
        free(rgb);
        free(rows);
        return vt_fail(err, VT_ERR_NOMEM, "%s: cannot allocate %zux%zu image", name, w, h);
    }
    for (size_t y = 0; y < h; y++) rows[y] = pixels + y * rowbytes;
    stage = "image data";
    png_read_image(png, rows);
    stage = "end of image";
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (channels == 4) {
        vt_image_composite_rgba(pixels, w * 4, (int)w, (int)h, opts->background, rgb, w * 3);
        free(pixels);
    }
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = rgb;
    return VT_OK;
}

vt_status vt_png_decode(const void *data, size_t len, const char *name, const vt_decode_opts *opts,
                        vt_image *out, vt_error *err) {
    out->width = out->height = 0;
    out->rgb = NULL;
    vt_decode_opts defaults = vt_decode_opts_default();
    if (!name) name = "<memory>";
    if (!opts) opts = &defaults;
    vt_image_info hdr;
    vt_status st = parse_header(data, len, name, &hdr, err);
    if (st == VT_OK) st = vt_image_check_size(hdr.width, hdr.height, opts, name, err);
    if (st != VT_OK) return st;
    return decode(data, len, name, opts, &hdr, out, err);
}

typedef struct png_sink {
    uint8_t *data;
    size_t len, cap;
    int oom;
} png_sink;

static void write_mem(png_structp png, png_bytep in, size_t n) {
    png_sink *s = png_get_io_ptr(png);
    if (n > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 4096;
        while (n > cap - s->len) cap *= 2;
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            s->oom = 1;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, in, n);
    s->len += n;
}

static void flush_mem(png_structp png) { (void)png; }

vt_status vt_image_encode_png(const vt_image *img, uint8_t **out, size_t *len, vt_error *err) {
    *out = NULL;
    *len = 0;
    if (!img->rgb || img->width <= 0 || img->height <= 0)
        return vt_fail(err, VT_ERR_ARG, "cannot encode an empty image as PNG");
    png_src errs = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errs, on_error, on_warning);
    if (!png) return vt_fail(err, VT_ERR_NOMEM, "cannot create PNG writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return vt_fail(err, VT_ERR_NOMEM, "cannot create PNG writer");
    }
    png_sink sink = {0};
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(sink.data);
        return vt_fail(err, sink.oom ? VT_ERR_NOMEM : VT_ERR_FORMAT, "PNG encode failed: %s",
                       errs.msg);
    }
    png_set_write_fn(png, &sink, write_mem, flush_mem);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    rows = malloc((size_t)img->height * sizeof *rows);
    if (!rows) {
        sink.oom = 1;
        png_error(png, "out of memory");
    }
    for (int y = 0; y < img->height; y++) rows[y] = img->rgb + (size_t)y * (size_t)img->width * 3;
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = sink.data;
    *len = sink.len;
    return VT_OK;
}
