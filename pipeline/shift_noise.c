/* Noise corruptions (ImageNet-C exact parameters): gaussian, shot (Poisson),
 * impulse (salt-and-pepper) and speckle noise on [0,1] pixels. All draws come
 * from the item's counter-based stream, in pixel order. */
#include <math.h>

#include "pipeline/shift_internal.h"

VT_SHIFT_IMAGE_KERNEL(gaussian_noise) {
    (void)err;
    static const double sigma[5] = {.08, .12, .18, .26, .38};
    double s = sigma[severity - 1];
    for (size_t i = 0; i < (size_t)w * h * 3; i++) rgb[i] += (float)(s * vt_rng_normal(rng));
    return VT_OK;
}

/* Poisson(mean) by sequential inversion: exact, and the means here are at
 * most 60 (exp(-60) is still a normal double). */
static int poisson(vt_rng *rng, double mean) {
    double u = vt_rng_uniform_double(rng), p = exp(-mean), f = p;
    int k = 0;
    while (u > f && k < 1000) {
        k++;
        p *= mean / k;
        f += p;
    }
    return k;
}

VT_SHIFT_IMAGE_KERNEL(shot_noise) {
    (void)err;
    static const double lambda[5] = {60, 25, 12, 5, 3};
    double l = lambda[severity - 1];
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        double x = rgb[i] < 0 ? 0 : rgb[i];
        rgb[i] = (float)(poisson(rng, x * l) / l);
    }
    return VT_OK;
}

/* skimage random_noise(mode='s&p'): each array element (not pixel)
 * independently becomes 0 or 1 with probability amount, half each. */
VT_SHIFT_IMAGE_KERNEL(impulse_noise) {
    (void)err;
    static const double amount[5] = {.03, .06, .09, .17, .27};
    double a = amount[severity - 1];
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        double u = vt_rng_uniform_double(rng);
        if (u < a) rgb[i] = u < a / 2 ? 0.0f : 1.0f;
    }
    return VT_OK;
}

VT_SHIFT_IMAGE_KERNEL(speckle_noise) {
    (void)err;
    static const double sigma[5] = {.15, .20, .35, .45, .60};
    double s = sigma[severity - 1];
    for (size_t i = 0; i < (size_t)w * h * 3; i++) rgb[i] += (float)(rgb[i] * s * vt_rng_normal(rng));
    return VT_OK;
}
