/* WebP through libwebp's advanced API: header probe, decode into a fresh
 * image or straight into caller memory (a batch buffer), and encode lossy or
 * lossless from RGB. WebP is the storage format of every ingested record. */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>

#include "pipeline/image.h"

static const char *status_text(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    }
    return "unknown status";
}

static vt_status webp_failure(VP8StatusCode s, const char *name, size_t len, const char *stage,
                              vt_error *err) {
    if (s == VP8_STATUS_OUT_OF_MEMORY)
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory decoding WebP", name);
    if (s == VP8_STATUS_NOT_ENOUGH_DATA)
        return vt_fail(err, VT_ERR_FORMAT, "%s: truncated WebP: data ends at byte %zu in the %s",
                       name, len, stage);
    return vt_fail(err, VT_ERR_FORMAT, "%s: corrupt WebP (%s): %s", name, stage, status_text(s));
}

/* Reads the header into config->input and checks what we cannot decode. */
static vt_status read_features(const void *data, size_t len, const char *name,
                               WebPBitstreamFeatures *f, vt_error *err) {
    VP8StatusCode s = WebPGetFeatures(data, len, f);
    if (s != VP8_STATUS_OK) return webp_failure(s, name, len, "header", err);
    if (f->has_animation)
        return vt_fail(err, VT_ERR_FORMAT, "%s: animated WebP is not supported (a still image is expected)",
                       name);
    return VT_OK;
}

vt_status vt_webp_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                        vt_error *err) {
    if (!name) name = "<memory>";
    memset(info, 0, sizeof *info);
    WebPBitstreamFeatures f;
    vt_status st = read_features(data, len, name, &f, err);
    if (st != VT_OK) return st;
    info->format = VT_IMAGE_WEBP;
    info->width = f.width;
    info->height = f.height;
    info->has_alpha = f.has_alpha != 0;
    info->lossless = f.format == 2;
    return VT_OK;
}

/* Decodes into dst (stride bytes per row) once the header is known good. */
static vt_status decode_pixels(const void *data, size_t len, const char *name,
                               const WebPBitstreamFeatures *f, const vt_decode_opts *opts,
                               uint8_t *dst, size_t stride, vt_error *err) {
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config))
        return vt_fail(err, VT_ERR_STATE, "%s: libwebp version mismatch", name);
    size_t w = (size_t)f->width, h = (size_t)f->height;
    uint8_t *rgba = NULL;
    config.output.is_external_memory = 1;
    if (f->has_alpha) {
        rgba = malloc(w * h * 4);
        if (!rgba) return vt_fail(err, VT_ERR_NOMEM, "%s: cannot allocate %zux%zu RGBA", name, w, h);
        config.output.colorspace = MODE_RGBA;
        config.output.u.RGBA.rgba = rgba;
        config.output.u.RGBA.stride = (int)(w * 4);
        config.output.u.RGBA.size = w * h * 4;
    } else {
        config.output.colorspace = MODE_RGB;
        config.output.u.RGBA.rgba = dst;
        config.output.u.RGBA.stride = (int)stride;
        config.output.u.RGBA.size = stride * (h - 1) + w * 3;
    }
    VP8StatusCode s = WebPDecode(data, len, &config);
    WebPFreeDecBuffer(&config.output); /* no-op for external memory, kept for symmetry */
    if (s != VP8_STATUS_OK) {
        free(rgba);
        return webp_failure(s, name, len, "image data", err);
    }
    if (rgba) {
        vt_decode_opts defaults = vt_decode_opts_default();
        const uint8_t *bg = (opts ? opts : &defaults)->background;
        vt_image_composite_rgba(rgba, w * 4, (int)w, (int)h, bg, dst, stride);
        free(rgba);
    }
    return VT_OK;
}

vt_status vt_webp_decode(const void *data, size_t len, const char *name,
                         const vt_decode_opts *opts, vt_image *out, vt_error *err) {
    if (!name) name = "<memory>";
    out->width = out->height = 0;
    out->rgb = NULL;
    WebPBitstreamFeatures f;
    vt_status st = read_features(data, len, name, &f, err);
    if (st == VT_OK) st = vt_image_check_size(f.width, f.height, opts, name, err);
    if (st != VT_OK) return st;
    vt_image img;
    st = vt_image_alloc(&img, f.width, f.height, err);
    if (st != VT_OK) {
        vt_error_prefix(err, "%s: ", name);
        return st;
    }
    st = decode_pixels(data, len, name, &f, opts, img.rgb, (size_t)f.width * 3, err);
    if (st != VT_OK) {
        vt_image_free(&img);
        return st;
    }
    *out = img;
    return VT_OK;
}

vt_status vt_webp_decode_into(const void *data, size_t len, const char *name,
                              const vt_decode_opts *opts, uint8_t *dst, size_t stride,
                              int expect_width, int expect_height, vt_error *err) {
    if (!name) name = "<memory>";
    if (expect_width <= 0 || expect_height <= 0 || stride < (size_t)expect_width * 3)
        return vt_fail(err, VT_ERR_ARG, "%s: bad destination %dx%d with stride %zu", name,
                       expect_width, expect_height, stride);
    if (len == 0) return vt_fail(err, VT_ERR_FORMAT, "%s: empty image (0 bytes)", name);
    if (vt_image_detect(data, len) != VT_IMAGE_WEBP)
        return vt_fail(err, VT_ERR_FORMAT, "%s: not a WebP image (%zu bytes)", name, len);
    WebPBitstreamFeatures f;
    vt_status st = read_features(data, len, name, &f, err);
    if (st != VT_OK) return st;
    if (f.width != expect_width || f.height != expect_height)
        return vt_fail(err, VT_ERR_FORMAT, "%s: WebP is %dx%d, expected %dx%d", name, f.width,
                       f.height, expect_width, expect_height);
    return decode_pixels(data, len, name, &f, opts, dst, stride, err);
}

vt_status vt_image_encode_webp(const vt_image *img, int quality, bool lossless, uint8_t **out,
                               size_t *len, vt_error *err) {
    *out = NULL;
    *len = 0;
    if (!img->rgb || img->width <= 0 || img->height <= 0)
        return vt_fail(err, VT_ERR_ARG, "cannot encode an empty image as WebP");
    if (quality < 0 || quality > 100)
        return vt_fail(err, VT_ERR_ARG, "WebP quality %d is outside 0..100", quality);
    if (img->width > WEBP_MAX_DIMENSION || img->height > WEBP_MAX_DIMENSION)
        return vt_fail(err, VT_ERR_RANGE, "%dx%d image exceeds WebP's %d-pixel side limit",
                       img->width, img->height, WEBP_MAX_DIMENSION);
    WebPConfig config;
    WebPPicture pic;
    if (!WebPConfigInit(&config) || !WebPPictureInit(&pic))
        return vt_fail(err, VT_ERR_STATE, "libwebp version mismatch");
    config.quality = (float)quality;
    config.lossless = lossless ? 1 : 0;
    config.method = 4; /* cwebp's default speed/size trade-off */
    if (lossless) config.exact = 1;
    pic.use_argb = lossless ? 1 : 0;
    pic.width = img->width;
    pic.height = img->height;
    WebPMemoryWriter writer;
    WebPMemoryWriterInit(&writer);
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &writer;
    if (!WebPPictureImportRGB(&pic, img->rgb, img->width * 3)) {
        WebPPictureFree(&pic);
        return vt_fail(err, VT_ERR_NOMEM, "cannot import %dx%d image into libwebp", img->width,
                       img->height);
    }
    int ok = WebPEncode(&config, &pic);
    int code = pic.error_code;
    WebPPictureFree(&pic);
    if (!ok) {
        WebPMemoryWriterClear(&writer);
        return vt_fail(err, code == VP8_ENC_ERROR_OUT_OF_MEMORY ? VT_ERR_NOMEM : VT_ERR_FORMAT,
                       "WebP encode of %dx%d failed (libwebp error %d)", img->width, img->height,
                       code);
    }
    uint8_t *buf = malloc(writer.size ? writer.size : 1);
    if (!buf) {
        WebPMemoryWriterClear(&writer);
        return vt_fail(err, VT_ERR_NOMEM, "cannot allocate %zu bytes for WebP", writer.size);
    }
    memcpy(buf, writer.mem, writer.size);
    *out = buf;
    *len = writer.size;
    WebPMemoryWriterClear(&writer);
    return VT_OK;
}
