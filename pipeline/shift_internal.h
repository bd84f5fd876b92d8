/* Internal to the shift catalog (pipeline/shift_*.c): the kernels each
 * family file exports to the catalog table, and the image primitives they
 * share (borders, separable Gaussian, resampling, HSV, plasma fractal).
 * Not part of the pipeline's public API; include pipeline/shift.h instead. */
#ifndef VT_PIPELINE_SHIFT_INTERNAL_H
#define VT_PIPELINE_SHIFT_INTERNAL_H

#include <stdint.h>

#include "common/rng.h"
#include "pipeline/shift.h"
#include "pipeline/wordnet.h"

/* ---- image primitives (shift_image_ops.c); images are float, interleaved, c channels ---- */
typedef enum vt_border {
    VT_BORDER_CLAMP,      /* aaa|abcd|ddd   (scipy 'nearest', skimage gaussian default) */
    VT_BORDER_REFLECT,    /* cba|abcd|dcb.. (scipy 'reflect': edge repeated) */
    VT_BORDER_REFLECT101, /* dcb|abcd|cba   (OpenCV default, scipy 'mirror') */
} vt_border;

int vt_shift_border_index(int i, int n, vt_border b);
/* Gaussian with scipy/skimage semantics: radius = (int)(truncate*sigma+0.5). */
vt_status vt_shift_gaussian_blur(float *img, int w, int h, int c, double sigma, double truncate, vt_border b,
                                 vt_error *err);
/* Full 2D correlation with a kw x kh kernel (odd sizes), centred. */
vt_status vt_shift_filter2d(float *img, int w, int h, int c, const float *k, int kw, int kh, vt_border b,
                            vt_error *err);
/* Bilinear sample at (x, y) (pixel centres at integers) into out[c]. */
void vt_shift_sample_bilinear(const float *img, int w, int h, int c, double x, double y, vt_border b, float *out);
/* dst = src zoomed by z about the centre, cropped to w x h (ImageNet-C clipped_zoom). */
void vt_shift_zoom_center(const float *src, float *dst, int w, int h, int c, double z);
/* Area-weighted box resize (PIL Image.BOX semantics), either direction. */
vt_status vt_shift_resize_box(const float *src, int sw, int sh, float *dst, int dw, int dh, int c, vt_error *err);
/* Bicubic resize (Keys a=-0.5 like PIL), support widened when downscaling. */
vt_status vt_shift_resize_bicubic(const float *src, int sw, int sh, float *dst, int dw, int dh, int c,
                                  vt_error *err);
/* One-sided line-kernel motion blur (radius, sigma, angle in degrees): the
 * ImageMagick MotionBlur that ImageNet-C called, done the way the
 * imagecorruptions package re-implemented it without Wand. */
vt_status vt_shift_motion_blur(float *img, int w, int h, int c, double radius, double sigma, double angle_deg,
                               vt_error *err);
void vt_shift_rgb_to_hsv(const float *rgb, float *hsv);
void vt_shift_hsv_to_rgb(const float *hsv, float *rgb);
/* Diamond-square plasma fractal of size x size (power of two), values in
 * [0,1], with ImageNet-C's "wibble" decay. */
vt_status vt_shift_plasma(float *map, int size, double decay, vt_rng *rng, vt_error *err);
/* Smallest power of two >= n, at least 256 (ImageNet-C's map size). */
int vt_shift_plasma_size(int w, int h);

/* ---- image kernels (vt_shift_image_fn) ---- */
#define VT_SHIFT_IMAGE_KERNEL(n) \
    vt_status vt_shiftk_##n(float *rgb, int w, int h, int severity, vt_rng *rng, vt_error *err)
VT_SHIFT_IMAGE_KERNEL(gaussian_noise);
VT_SHIFT_IMAGE_KERNEL(shot_noise);
VT_SHIFT_IMAGE_KERNEL(impulse_noise);
VT_SHIFT_IMAGE_KERNEL(speckle_noise);
VT_SHIFT_IMAGE_KERNEL(defocus_blur);
VT_SHIFT_IMAGE_KERNEL(glass_blur);
VT_SHIFT_IMAGE_KERNEL(motion_blur);
VT_SHIFT_IMAGE_KERNEL(zoom_blur);
VT_SHIFT_IMAGE_KERNEL(gaussian_blur);
VT_SHIFT_IMAGE_KERNEL(snow);
VT_SHIFT_IMAGE_KERNEL(frost_proc);
VT_SHIFT_IMAGE_KERNEL(fog);
VT_SHIFT_IMAGE_KERNEL(spatter);
VT_SHIFT_IMAGE_KERNEL(brightness);
VT_SHIFT_IMAGE_KERNEL(contrast);
VT_SHIFT_IMAGE_KERNEL(saturate);
VT_SHIFT_IMAGE_KERNEL(elastic_transform);
VT_SHIFT_IMAGE_KERNEL(pixelate);
VT_SHIFT_IMAGE_KERNEL(jpeg_compression);
VT_SHIFT_IMAGE_KERNEL(low_res);
VT_SHIFT_IMAGE_KERNEL(rotation);
VT_SHIFT_IMAGE_KERNEL(cutout);

/* ---- text kernels (vt_shift_text_fn) ---- */
#define VT_SHIFT_TEXT_KERNEL(n)                                                                     \
    vt_status vt_shiftk_##n(const char *in, int severity, vt_rng *rng, vt_shift_env *env, char **out, \
                           vt_error *err)
VT_SHIFT_TEXT_KERNEL(keyboard);
VT_SHIFT_TEXT_KERNEL(ocr);
VT_SHIFT_TEXT_KERNEL(char_insert);
VT_SHIFT_TEXT_KERNEL(char_substitute);
VT_SHIFT_TEXT_KERNEL(char_swap);
VT_SHIFT_TEXT_KERNEL(char_delete);
VT_SHIFT_TEXT_KERNEL(synonym_replace);
VT_SHIFT_TEXT_KERNEL(synonym_insert);
VT_SHIFT_TEXT_KERNEL(word_swap);
VT_SHIFT_TEXT_KERNEL(word_delete);
VT_SHIFT_TEXT_KERNEL(insert_punctuation);
VT_SHIFT_TEXT_KERNEL(case_change);
VT_SHIFT_TEXT_KERNEL(distractor);
VT_SHIFT_TEXT_KERNEL(whitespace_homoglyph);

/* ---- WordNet access for the synonym shifts (shift_env.c) ---- */
/* Loads WordNet on first call (thread-safe). */
vt_status vt_shift_env_wordnet(vt_shift_env *env, const vt_wordnet **wn, vt_error *err);

#endif
