/* JPEG through libjpeg-turbo: decode from memory to 8-bit RGB (YCbCr, grey,
 * RGB and Adobe CMYK/YCCK inputs). libjpeg treats a cut-off file or a damaged
 * entropy segment as a *warning* and pads the image with grey; we treat those
 * warnings as errors, so a truncated JPEG is refused rather than ingested
 * half-grey. Harmless warnings (extraneous bytes, unknown JFIF revision) pass. */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "pipeline/image.h"

typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error_exit(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jmp, 1);
}

/* Warnings that mean the pixels are not what the file was meant to hold. */
static int is_damage(int code) {
    switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        return 1;
    default:
        return 0;
    }
}

static void on_message(j_common_ptr c, int level) {
    if (level >= 0) return; /* trace messages */
    jpeg_err *e = (jpeg_err *)c->err;
    int code = c->err->msg_code;
    if (!is_damage(code)) return;
    e->truncated = code == JWRN_JPEG_EOF;
    c->err->format_message(c, e->msg);
    longjmp(e->jmp, 1);
}

static vt_status jpeg_failure(const jpeg_err *e, const char *name, size_t len, const char *stage,
                              vt_error *err) {
    if (e->truncated)
        return vt_fail(err, VT_ERR_FORMAT, "%s: truncated JPEG: data ends at byte %zu in the %s",
                       name, len, stage);
    return vt_fail(err, VT_ERR_FORMAT, "%s: corrupt JPEG (%s): %s", name, stage, e->msg);
}

static void setup(struct jpeg_decompress_struct *cinfo, jpeg_err *e) {
    memset(e, 0, sizeof *e);
    cinfo->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error_exit;
    e->pub.emit_message = on_message;
}

static vt_status probe(const void *data, size_t len, const char *name, vt_image_info *info,
                       vt_error *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err e;
    setup(&cinfo, &e);
    if (setjmp(e.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        return jpeg_failure(&e, name, len, "header", err);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    info->format = VT_IMAGE_JPEG;
    info->width = (int)cinfo.image_width;
    info->height = (int)cinfo.image_height;
    info->has_alpha = false;
    info->lossless = false;
    jpeg_destroy_decompress(&cinfo);
    return VT_OK;
}

vt_status vt_jpeg_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                        vt_error *err) {
    memset(info, 0, sizeof *info);
    return probe(data, len, name ? name : "<memory>", info, err);
}

/* CMYK as Adobe writes it is stored inverted (0 = full ink). */
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n, int inverted) {
    for (size_t i = 0; i < n; i++, cmyk += 4, rgb += 3) {
        unsigned k = inverted ? cmyk[3] : 255u - cmyk[3];
        for (int c = 0; c < 3; c++) {
            unsigned v = inverted ? cmyk[c] : 255u - cmyk[c];
            rgb[c] = (uint8_t)((v * k + 127u) / 255u);
        }
    }
}

/* The setjmp frame; its arguments are never assigned (longjmp-safe). */
static vt_status decode(const void *data, size_t len, const char *name,
                        const vt_decode_opts *opts, vt_image *out, vt_error *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err e;
    setup(&cinfo, &e);
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL; /* one CMYK scanline */
    const char *volatile stage = "header";
    if (setjmp(e.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return jpeg_failure(&e, name, len, stage, err);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    vt_status st = vt_image_check_size(cinfo.image_width, cinfo.image_height, opts, name, err);
    if (st != VT_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    stage = "image data";
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    if ((size_t)cinfo.output_components != (cmyk ? 4u : 3u)) {
        jpeg_destroy_decompress(&cinfo);
        return vt_fail(err, VT_ERR_FORMAT, "%s: unsupported JPEG colour layout (%d components)",
                       name, cinfo.output_components);
    }
    rgb = malloc(w * h * 3);
    if (cmyk) row = malloc(w * 4);
    if (!rgb || (cmyk && !row)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return vt_fail(err, VT_ERR_NOMEM, "%s: cannot allocate %zux%zu image", name, w, h);
    }
    while (cinfo.output_scanline < h) {
        size_t y = cinfo.output_scanline;
        JSAMPROW dst = cmyk ? row : rgb + y * w * 3;
        jpeg_read_scanlines(&cinfo, &dst, 1);
        if (cmyk) cmyk_to_rgb(row, rgb + y * w * 3, w, cinfo.saw_Adobe_marker);
    }
    stage = "end of image";
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = rgb;
    return VT_OK;
}

vt_status vt_jpeg_decode(const void *data, size_t len, const char *name,
                         const vt_decode_opts *opts, vt_image *out, vt_error *err) {
    out->width = out->height = 0;
    out->rgb = NULL;
    return decode(data, len, name ? name : "<memory>", opts, out, err);
}
