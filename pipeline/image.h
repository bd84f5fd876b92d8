/* Images: 8-bit RGB pixels in memory, decoded from PNG (libpng), JPEG
 * (libjpeg-turbo) and WebP (libwebp), resized with an antialiased filter,
 * fitted to a square (LLaVA pad or CLIP center-crop), and encoded to WebP/PNG.
 *
 * Conventions (every function below follows them):
 * - Pixels are row-major HWC RGB, tightly packed: pixel (x, y) channel c is
 *   rgb[(y * width + x) * 3 + c]. No alpha and no stride in vt_image.
 * - Alpha is composited on decode onto a background colour, by default
 *   WHITE (255,255,255) -- the stamps and icons this project ingests are
 *   drawn for a white page. Pass vt_decode_opts to choose another colour.
 *   Compositing is in gamma-encoded space: out = (a*c + (255-a)*bg + 127)/255.
 * - No colour management: ICC profiles and PNG gAMA are ignored; 16-bit
 *   channels are reduced to 8 bits; grey and palette images become RGB.
 * - Decompression bombs: the pixel count is read from the header and checked
 *   against a limit BEFORE any pixel memory is allocated (VT_ERR_RANGE).
 * - `name` arguments only label error messages ("cat.png: truncated ..."); a
 *   NULL name reads "<memory>". Every error names what is wrong.
 * - A vt_image returned by a function owns its rgb buffer (malloc); release it
 *   with vt_image_free. On error *out is left empty ({0, 0, NULL}).
 */
#ifndef VT_PIPELINE_IMAGE_H
#define VT_PIPELINE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_image {
    int width, height;
    uint8_t *rgb; /* width * height * 3 bytes */
} vt_image;

typedef enum vt_image_format {
    VT_IMAGE_UNKNOWN = 0,
    VT_IMAGE_PNG,
    VT_IMAGE_JPEG,
    VT_IMAGE_WEBP,
} vt_image_format;

/* Default pixel-count limit: 64 Mpx (e.g. 8192x8192), 192 MiB of RGB. */
#define VT_IMAGE_MAX_PIXELS_DEFAULT (64ull * 1024 * 1024)
/* Default limit on an image file read by vt_image_load. */
#define VT_IMAGE_MAX_FILE_BYTES_DEFAULT (256ull * 1024 * 1024)

typedef struct vt_decode_opts {
    uint64_t max_pixels;    /* 0 = VT_IMAGE_MAX_PIXELS_DEFAULT */
    uint8_t background[3];  /* alpha is composited onto this colour */
} vt_decode_opts;

/* The defaults: max_pixels 0 (= default limit), white background. A NULL
 * opts pointer anywhere below means the same. */
vt_decode_opts vt_decode_opts_default(void);

/* What the header says, without decoding pixels. */
typedef struct vt_image_info {
    vt_image_format format;
    int width, height;
    bool has_alpha; /* alpha channel or transparency present */
    bool lossless;  /* PNG, or WebP lossless (VP8L); false for JPEG and lossy WebP */
} vt_image_info;

/* --- memory and shared helpers --- */

/* Allocates an uninitialised width x height image. VT_ERR_RANGE when a side
 * is not positive or the byte count overflows, VT_ERR_NOMEM when malloc fails. */
vt_status vt_image_alloc(vt_image *img, int width, int height, vt_error *err);
/* Frees the pixels and resets to {0, 0, NULL}; NULL and empty images are fine. */
void vt_image_free(vt_image *img);
/* Fills every pixel with one colour. */
void vt_image_fill(vt_image *img, const uint8_t rgb[3]);

/* The decompression-bomb guard every decoder runs on the header's size:
 * VT_ERR_FORMAT for a non-positive side, VT_ERR_RANGE when width*height
 * exceeds the limit (the message names the size, the count and the limit). */
vt_status vt_image_check_size(int64_t width, int64_t height, const vt_decode_opts *opts,
                              const char *name, vt_error *err);
/* Composites `rows` rows of `width` RGBA pixels onto bg into RGB rows. */
void vt_image_composite_rgba(const uint8_t *rgba, size_t rgba_stride, int width, int rows,
                             const uint8_t bg[3], uint8_t *rgb, size_t rgb_stride);

/* --- detection and decoding --- */

/* Format from the magic bytes (PNG signature, JPEG SOI FF D8 FF, RIFF....WEBP). */
vt_image_format vt_image_detect(const void *data, size_t len);
/* "png", "jpeg", "webp" or "unknown". */
const char *vt_image_format_name(vt_image_format f);

/* Reads the header only. Fails with VT_ERR_FORMAT on zero bytes, unknown
 * magic, or a truncated/corrupt header. */
vt_status vt_image_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                         vt_error *err);

/* Decodes any supported format from memory (detected by magic bytes).
 * Errors: VT_ERR_FORMAT for empty, unknown, truncated or corrupt data;
 * VT_ERR_RANGE when the header's pixel count exceeds opts->max_pixels. */
vt_status vt_image_decode(const void *data, size_t len, const char *name,
                          const vt_decode_opts *opts, vt_image *out, vt_error *err);
/* Reads a file (at most VT_IMAGE_MAX_FILE_BYTES_DEFAULT) and decodes it; the
 * path names the errors. VT_ERR_IO when it cannot be read. */
vt_status vt_image_load(const char *path, const vt_decode_opts *opts, vt_image *out,
                        vt_error *err);

/* Per-format probes and decoders (the generic forms dispatch to these). */
vt_status vt_png_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                       vt_error *err);
vt_status vt_jpeg_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                        vt_error *err);
vt_status vt_webp_probe(const void *data, size_t len, const char *name, vt_image_info *info,
                        vt_error *err);
vt_status vt_png_decode(const void *data, size_t len, const char *name, const vt_decode_opts *opts,
                        vt_image *out, vt_error *err);
vt_status vt_jpeg_decode(const void *data, size_t len, const char *name,
                         const vt_decode_opts *opts, vt_image *out, vt_error *err);
vt_status vt_webp_decode(const void *data, size_t len, const char *name,
                         const vt_decode_opts *opts, vt_image *out, vt_error *err);

/* Decodes a WebP bitstream straight into caller memory (a batch buffer):
 * RGB, `stride` bytes between rows (>= width*3). The bitstream must be exactly
 * expect_width x expect_height (VT_ERR_FORMAT naming both sizes otherwise), so
 * a wrong record cannot overrun the batch. Images with alpha are composited
 * onto opts->background (through a temporary buffer; the WebP images that
 * ingest writes have no alpha and take the direct path). */
vt_status vt_webp_decode_into(const void *data, size_t len, const char *name,
                              const vt_decode_opts *opts, uint8_t *dst, size_t stride,
                              int expect_width, int expect_height, vt_error *err);

/* --- geometry --- */

/* Resizes src to width x height into *dst (allocated here) with a separable
 * triangle (bilinear) filter whose support widens with the downscale factor,
 * i.e. antialiased bilinear: every source pixel contributes to the output
 * pixels it overlaps, like PIL's Image.resize(BILINEAR) and PyTorch's
 * interpolate(mode="bilinear", antialias=True, align_corners=False). For
 * upscaling this is plain bilinear. Intermediate values stay in float; the
 * result is rounded to nearest. dst must not alias src. */
vt_status vt_image_resize(const vt_image *src, int width, int height, vt_image *dst,
                          vt_error *err);

/* Copies the rectangle (x, y, width, height), which must lie inside src. */
vt_status vt_image_crop(const vt_image *src, int x, int y, int width, int height, vt_image *dst,
                        vt_error *err);

typedef enum vt_fit_mode {
    /* LLaVA's expand2square: pad the short side (image centred, offset
     * (long-short)/2 rounded down) with a colour to a square, then resize. */
    VT_FIT_PAD = 0,
    /* CLIP's preprocessing: resize so the short side is `size` (long side
     * scaled and truncated, as transformers' CLIPImageProcessor does), then
     * crop the centre (offset rounded down). */
    VT_FIT_CROP = 1,
} vt_fit_mode;

/* LLaVA's pad colour: the CLIP mean (0.48145466, 0.4578275, 0.40821073)
 * times 255, truncated as LLaVA does: (122, 116, 104). */
extern const uint8_t VT_CLIP_MEAN_RGB[3];

/* Fits src into a size x size square by mode. pad_rgb is the pad colour for
 * VT_FIT_PAD (NULL = VT_CLIP_MEAN_RGB); ignored for VT_FIT_CROP. */
vt_status vt_image_fit_square(const vt_image *src, int size, vt_fit_mode mode,
                              const uint8_t *pad_rgb, vt_image *dst, vt_error *err);
/* "pad" / "crop" -> mode; VT_ERR_ARG for anything else. */
vt_status vt_fit_mode_parse(const char *s, vt_fit_mode *mode, vt_error *err);

/* --- encoding --- */

/* Encodes to WebP: lossy at quality 0..100 (libwebp's scale, 75 is cwebp's
 * default), or lossless (quality then sets the compression effort; pixels
 * round-trip exactly). *out is malloc'd; free() it. WebP sides are limited
 * to 16383 (VT_ERR_RANGE beyond). */
vt_status vt_image_encode_webp(const vt_image *img, int quality, bool lossless, uint8_t **out,
                               size_t *len, vt_error *err);
/* Encodes to an 8-bit RGB PNG (zlib level 6). *out is malloc'd; free() it. */
vt_status vt_image_encode_png(const vt_image *img, uint8_t **out, size_t *len, vt_error *err);
/* Encodes to PNG and writes it atomically (temp + fsync + rename). */
vt_status vt_image_save_png(const vt_image *img, const char *path, vt_error *err);
/* Encodes to WebP and writes it atomically. */
vt_status vt_image_save_webp(const vt_image *img, const char *path, int quality, bool lossless,
                             vt_error *err);

#endif
