/* Image memory, format detection by magic bytes, the decompression-bomb
 * guard, alpha compositing, and the format-independent decode/load/save entry
 * points. The codecs themselves live in image_png.c, image_jpeg.c, image_webp.c. */
#include "pipeline/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"

const uint8_t VT_CLIP_MEAN_RGB[3] = {122, 116, 104};

vt_decode_opts vt_decode_opts_default(void) {
    vt_decode_opts o = {.max_pixels = 0, .background = {255, 255, 255}};
    return o;
}

vt_status vt_image_alloc(vt_image *img, int width, int height, vt_error *err) {
    img->width = img->height = 0;
    img->rgb = NULL;
    if (width <= 0 || height <= 0)
        return vt_fail(err, VT_ERR_RANGE, "image size %dx%d: sides must be positive", width, height);
    uint64_t bytes = (uint64_t)width * (uint64_t)height * 3u;
    if (bytes > (uint64_t)SIZE_MAX / 2)
        return vt_fail(err, VT_ERR_RANGE, "image size %dx%d is too large", width, height);
    img->rgb = malloc((size_t)bytes);
    if (!img->rgb)
        return vt_fail(err, VT_ERR_NOMEM, "cannot allocate %dx%d image (%llu bytes)", width, height,
                       (unsigned long long)bytes);
    img->width = width;
    img->height = height;
    return VT_OK;
}

void vt_image_free(vt_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

void vt_image_fill(vt_image *img, const uint8_t rgb[3]) {
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) memcpy(img->rgb + 3 * i, rgb, 3);
}

vt_status vt_image_check_size(int64_t width, int64_t height, const vt_decode_opts *opts,
                              const char *name, vt_error *err) {
    uint64_t limit = opts && opts->max_pixels ? opts->max_pixels : VT_IMAGE_MAX_PIXELS_DEFAULT;
    if (!name) name = "<memory>";
    if (width <= 0 || height <= 0)
        return vt_fail(err, VT_ERR_FORMAT, "%s: header gives an invalid size %lldx%lld", name,
                       (long long)width, (long long)height);
    /* Both sides fit in 32 bits in every format we read, so the product cannot overflow. */
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (pixels > limit || width > 0x7fffffff / 4 || height > 0x7fffffff / 4)
        return vt_fail(err, VT_ERR_RANGE,
                       "%s: header claims %lldx%lld = %llu pixels, above the limit of %llu "
                       "(refusing a possible decompression bomb)",
                       name, (long long)width, (long long)height, (unsigned long long)pixels,
                       (unsigned long long)limit);
    return VT_OK;
}

void vt_image_composite_rgba(const uint8_t *rgba, size_t rgba_stride, int width, int rows,
                             const uint8_t bg[3], uint8_t *rgb, size_t rgb_stride) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = rgba + (size_t)y * rgba_stride;
        uint8_t *d = rgb + (size_t)y * rgb_stride;
        for (int x = 0; x < width; x++, s += 4, d += 3) {
            unsigned a = s[3];
            for (int c = 0; c < 3; c++) d[c] = (uint8_t)((a * s[c] + (255u - a) * bg[c] + 127u) / 255u);
        }
    }
}

vt_image_format vt_image_detect(const void *data, size_t len) {
    const unsigned char *p = data;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(p, png_sig, 8)) return VT_IMAGE_PNG;
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return VT_IMAGE_JPEG;
    if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return VT_IMAGE_WEBP;
    return VT_IMAGE_UNKNOWN;
}

const char *vt_image_format_name(vt_image_format f) {
    switch (f) {
    case VT_IMAGE_PNG: return "png";
    case VT_IMAGE_JPEG: return "jpeg";
    case VT_IMAGE_WEBP: return "webp";
    default: return "unknown";
    }
}

/* The one message for data that is not an image we read. */
static vt_status unknown_format(const void *data, size_t len, const char *name, vt_error *err) {
    if (len == 0) return vt_fail(err, VT_ERR_FORMAT, "%s: empty image (0 bytes)", name);
    const unsigned char *p = data;
    char hex[3 * 8 + 1] = "";
    size_t n = len < 8 ? len : 8;
    for (size_t i = 0; i < n; i++) snprintf(hex + 3 * i, 4, "%02x ", p[i]);
    hex[3 * n - 1] = '\0';
    return vt_fail(err, VT_ERR_FORMAT,
                   "%s: not a PNG, JPEG or WebP image (%zu bytes starting %s)", name, len, hex);
}

vt_status vt_image_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                         vt_error *err) {
    if (!name) name = "<memory>";
    memset(info, 0, sizeof *info);
    switch (vt_image_detect(data, len)) {
    case VT_IMAGE_PNG: return vt_png_probe(data, len, name, info, err);
    case VT_IMAGE_JPEG: return vt_jpeg_probe(data, len, name, info, err);
    case VT_IMAGE_WEBP: return vt_webp_probe(data, len, name, info, err);
    default: return unknown_format(data, len, name, err);
    }
}

vt_status vt_image_decode(const void *data, size_t len, const char *name,
                          const vt_decode_opts *opts, vt_image *out, vt_error *err) {
    if (!name) name = "<memory>";
    out->width = out->height = 0;
    out->rgb = NULL;
    switch (vt_image_detect(data, len)) {
    case VT_IMAGE_PNG: return vt_png_decode(data, len, name, opts, out, err);
    case VT_IMAGE_JPEG: return vt_jpeg_decode(data, len, name, opts, out, err);
    case VT_IMAGE_WEBP: return vt_webp_decode(data, len, name, opts, out, err);
    default: return unknown_format(data, len, name, err);
    }
}

vt_status vt_image_load(const char *path, const vt_decode_opts *opts, vt_image *out,
                        vt_error *err) {
    out->width = out->height = 0;
    out->rgb = NULL;
    char *data;
    size_t len;
    vt_status st = vt_read_file(path, VT_IMAGE_MAX_FILE_BYTES_DEFAULT, &data, &len, err);
    if (st != VT_OK) return st;
    st = vt_image_decode(data, len, path, opts, out, err);
    free(data);
    return st;
}

vt_status vt_image_save_png(const vt_image *img, const char *path, vt_error *err) {
    uint8_t *buf;
    size_t len;
    vt_status st = vt_image_encode_png(img, &buf, &len, err);
    if (st != VT_OK) {
        vt_error_prefix(err, "%s: ", path);
        return st;
    }
    st = vt_write_file_atomic(path, buf, len, err);
    free(buf);
    return st;
}

vt_status vt_image_save_webp(const vt_image *img, const char *path, int quality, bool lossless,
                             vt_error *err) {
    uint8_t *buf;
    size_t len;
    vt_status st = vt_image_encode_webp(img, quality, lossless, &buf, &len, err);
    if (st != VT_OK) {
        vt_error_prefix(err, "%s: ", path);
        return st;
    }
    st = vt_write_file_atomic(path, buf, len, err);
    free(buf);
    return st;
}
