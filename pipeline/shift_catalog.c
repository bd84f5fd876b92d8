/* The versioned shift catalog: the table of shifts (research/shifts.md 5),
 * lookup with close-match suggestions, seeding, and the apply entry points
 * that convert RGB8 <-> float, derive the per-item random streams and clip.
 * Adding, removing or changing a shift's output means bumping
 * VT_SHIFT_CATALOG_VERSION (pipeline/shift.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

#define IMG(n, fam, par, note) {#n, fam, VT_SHIFT_IMAGE, par, note, vt_shiftk_##n, NULL}
#define TXT(n, fam, par, note) {#n, fam, VT_SHIFT_TEXT, par, note, NULL, vt_shiftk_##n}
#define JNT(n, i, t, par) {#n, "joint", VT_SHIFT_JOINT, par, "proposal: " #i " + " #t " at the same severity", \
                           vt_shiftk_##i, vt_shiftk_##t}

static const vt_shift CATALOG[] = {
    IMG(gaussian_noise, "noise", "sigma=.08/.12/.18/.26/.38", "ImageNet-C exact"),
    IMG(shot_noise, "noise", "lambda=60/25/12/5/3", "ImageNet-C exact"),
    IMG(impulse_noise, "noise", "amount=.03/.06/.09/.17/.27", "ImageNet-C exact"),
    IMG(speckle_noise, "noise", "sigma=.15/.20/.35/.45/.60", "ImageNet-C extra, exact"),
    IMG(defocus_blur, "blur", "(r,alias)=(3,.1)/(4,.5)/(6,.5)/(8,.5)/(10,.5)", "ImageNet-C exact"),
    IMG(glass_blur, "blur", "(sigma,delta,iter)=(.7,1,2)/(.9,2,1)/(1,2,3)/(1.1,3,2)/(1.5,4,2)", "ImageNet-C exact"),
    IMG(motion_blur, "blur", "(radius,sigma)=(10,3)/(15,5)/(15,8)/(15,12)/(20,15), angle~U(-45,45)",
        "ImageNet-C parameters; one-sided line kernel instead of ImageMagick"),
    IMG(zoom_blur, "blur", "zoom 1..max step=1.10/.01 1.15/.01 1.20/.02 1.24/.02 1.30/.03", "ImageNet-C exact"),
    IMG(gaussian_blur, "blur", "sigma=1/2/3/4/6", "ImageNet-C extra, exact"),
    IMG(snow, "weather", "(mu,sd,zoom,thr,R,S,w)=(.1,.3,3,.5,10,4,.8)/(.2,.3,2,.5,12,4,.7)/(.55,.3,4,.9,12,8,.7)/"
                         "(.55,.3,4.5,.85,12,8,.65)/(.55,.3,2.5,.85,12,12,.55)",
        "ImageNet-C parameters; line-kernel motion blur"),
    IMG(frost_proc, "weather", "(a,b)=(1,.4)/(.8,.6)/(.7,.7)/(.65,.7)/(.6,.75)",
        "ImageNet-C blend over a procedural frost layer (no frost photos): not comparable 1:1 with frost"),
    IMG(fog, "weather", "(k,decay)=(1.5,2)/(2,2)/(2.5,1.7)/(2.5,1.5)/(3,1.4)", "ImageNet-C exact"),
    IMG(spatter, "weather", "(mu,sd,blur,thr,k,mode)=(.65,.3,4,.69,.6,water)/(.65,.3,3,.68,.6,water)/"
                            "(.65,.3,2,.68,.5,water)/(.65,.3,1,.65,1.5,mud)/(.67,.4,1,.65,1.5,mud)",
        "ImageNet-C extra; Canny replaced by region borders"),
    IMG(brightness, "digital", "dV=.1/.2/.3/.4/.5", "ImageNet-C exact"),
    IMG(contrast, "digital", "c=.4/.3/.2/.1/.05", "ImageNet-C exact"),
    IMG(saturate, "digital", "(m,a)=(.3,0)/(.1,0)/(2,0)/(5,.1)/(20,.2)", "ImageNet-C extra, exact"),
    IMG(elastic_transform, "digital", "(alpha,sigma,jitter)=(488,170.8,24.4)/(488,19.52,48.8)/(12.2,2.44,4.88)/"
                                      "(17.08,2.44,4.88)/(29.28,2.44,4.88)",
        "ImageNet-C exact (244-based constants)"),
    IMG(pixelate, "digital", "f=.6/.5/.4/.3/.25", "ImageNet-C exact"),
    IMG(jpeg_compression, "digital", "quality=25/18/15/10/7", "ImageNet-C exact (libjpeg)"),
    IMG(low_res, "resample", "scale=.5/.35/.25/.18/.125 (area down, bicubic up)", "proposal"),
    IMG(rotation, "geometric", "degrees=5/10/20/30/45 (random sign, reflect pad)", "proposal"),
    IMG(cutout, "occlusion", "area=.05/.10/.20/.30/.40 in s grey squares", "proposal"),
    TXT(keyboard, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (nlpaug KeyboardAug)"),
    TXT(ocr, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (nlpaug OcrAug)"),
    TXT(char_insert, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (RandomCharAug insert)"),
    TXT(char_substitute, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (RandomCharAug substitute)"),
    TXT(char_swap, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (RandomCharAug swap)"),
    TXT(char_delete, "char", "word fraction=.05/.10/.15/.20/.25", "Qiu et al. (RandomCharAug delete)"),
    TXT(synonym_replace, "word", "alpha=.05/.10/.15/.20/.25 (WordNet)", "Qiu et al. (EDA SR)"),
    TXT(synonym_insert, "word", "alpha=.05/.10/.15/.20/.25 (WordNet)", "Qiu et al. (EDA RI)"),
    TXT(word_swap, "word", "alpha=.05/.10/.15/.20/.25", "Qiu et al. (EDA RS)"),
    TXT(word_delete, "word", "p=.05/.10/.15/.20/.25", "Qiu et al. (EDA RD)"),
    TXT(insert_punctuation, "word", "ratio=.05/.10/.15/.20/.25", "Qiu et al. (IP)"),
    TXT(case_change, "format", "word fraction=.2/.4/.6/.8/1.0", "proposal"),
    TXT(whitespace_homoglyph, "format", "char fraction=.02/.05/.10/.15/.20", "proposal"),
    TXT(distractor, "sentence", "sentences=1/2/3/4/5", "proposal (TextFlint AppendIrr style)"),
    JNT(joint_noise_keyboard, gaussian_noise, keyboard, "gaussian_noise s + keyboard s"),
    JNT(joint_defocus_synonym, defocus_blur, synonym_replace, "defocus_blur s + synonym_replace s"),
    JNT(joint_frost_chardelete, frost_proc, char_delete, "frost_proc s + char_delete s"),
    JNT(joint_jpeg_worddelete, jpeg_compression, word_delete, "jpeg_compression s + word_delete s"),
    JNT(joint_lowres_distractor, low_res, distractor, "low_res s + distractor s"),
};
enum { NSHIFTS = sizeof CATALOG / sizeof CATALOG[0] };

size_t vt_shift_count(void) { return NSHIFTS; }
const vt_shift *vt_shift_at(size_t i) { return i < NSHIFTS ? &CATALOG[i] : NULL; }

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 64;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

vt_status vt_shift_find(const char *name, const vt_shift **out, vt_error *err) {
    *out = NULL;
    for (size_t i = 0; i < NSHIFTS; i++)
        if (!strcmp(CATALOG[i].name, name)) {
            *out = &CATALOG[i];
            return VT_OK;
        }
    /* Up to three suggestions: small edit distance, or one name containing the other. */
    size_t best[3] = {0}, bestd[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    size_t limit = strlen(name) / 3 + 2;
    for (size_t i = 0; i < NSHIFTS; i++) {
        size_t d = edit_distance(name, CATALOG[i].name);
        /* also against each '_' part and the same-length prefix: "gausian" ~ "gaussian_noise" */
        char part[64];
        const char *c = CATALOG[i].name;
        while (*c) {
            size_t l = strcspn(c, "_");
            if (l < sizeof part) {
                memcpy(part, c, l), part[l] = 0;
                size_t dp = edit_distance(name, part) + 1;
                d = dp < d ? dp : d;
            }
            c += l + (c[l] == '_');
        }
        size_t nl = strlen(name);
        if (nl < sizeof part && nl < strlen(CATALOG[i].name)) {
            memcpy(part, CATALOG[i].name, nl), part[nl] = 0;
            size_t dp = edit_distance(name, part) + 1;
            d = dp < d ? dp : d;
        }
        if (*name && (strstr(CATALOG[i].name, name) || strstr(name, CATALOG[i].name))) d = d < limit ? d : limit;
        if (d > limit) continue;
        for (int k = 0; k < 3; k++)
            if (d < bestd[k]) {
                for (int m = 2; m > k; m--) best[m] = best[m - 1], bestd[m] = bestd[m - 1];
                best[k] = i, bestd[k] = d;
                break;
            }
    }
    char hint[256] = "";
    if (bestd[0] != SIZE_MAX) {
        size_t len = (size_t)snprintf(hint, sizeof hint, " (did you mean ");
        for (int k = 0; k < 3 && bestd[k] != SIZE_MAX; k++)
            len += (size_t)snprintf(hint + len, sizeof hint - len, "%s%s", k ? ", " : "", CATALOG[best[k]].name);
        snprintf(hint + len, sizeof hint - len, "?)");
    } else {
        snprintf(hint, sizeof hint, " (see vistune shift --list)");
    }
    return vt_fail(err, VT_ERR_ARG, "unknown shift '%s'%s", name, hint);
}

uint64_t vt_shift_item_key(const char *item_id) { return vt_hash_bytes(item_id, strlen(item_id), 0x5348494654ull); }

uint64_t vt_shift_seed(uint64_t item, const vt_shift *shift, int severity) {
    uint64_t name = vt_hash_bytes(shift->name, strlen(shift->name), 0);
    return vt_hash4(item, name, (uint64_t)severity, VT_SHIFT_CATALOG_VERSION);
}

/* Separate streams for the two halves of a joint shift, so a joint shift's
 * image equals what its image kernel would draw from the same seed. */
enum { STREAM_IMAGE = 0x494d47, STREAM_TEXT = 0x545854 };

static vt_status check_severity(const vt_shift *s, int severity, vt_error *err) {
    if (!s) return vt_fail(err, VT_ERR_ARG, "shift: no shift given");
    if (severity < 1 || severity > VT_SHIFT_SEVERITIES)
        return vt_fail(err, VT_ERR_RANGE, "shift %s: severity %d out of range 1..%d", s->name, severity,
                       VT_SHIFT_SEVERITIES);
    return VT_OK;
}

vt_status vt_shift_apply_image(const vt_shift *shift, int severity, uint64_t seed, const uint8_t *rgb, int w,
                               int h, uint8_t *out, vt_error *err) {
    vt_status st = check_severity(shift, severity, err);
    if (st != VT_OK) return st;
    if (w < VT_SHIFT_MIN_SIDE || h < VT_SHIFT_MIN_SIDE || w > VT_SHIFT_MAX_SIDE || h > VT_SHIFT_MAX_SIDE)
        return vt_fail(err, VT_ERR_RANGE, "shift %s: image %dx%d outside %dx%d..%dx%d", shift->name, w, h,
                       VT_SHIFT_MIN_SIDE, VT_SHIFT_MIN_SIDE, VT_SHIFT_MAX_SIDE, VT_SHIFT_MAX_SIDE);
    size_t n = (size_t)w * h * 3;
    if (!shift->image) {
        if (out != rgb) memmove(out, rgb, n);
        return VT_OK;
    }
    float *f = malloc(sizeof(float) * n);
    if (!f) return vt_fail(err, VT_ERR_NOMEM, "shift %s: out of memory for %dx%d", shift->name, w, h);
    for (size_t i = 0; i < n; i++) f[i] = rgb[i] / 255.0f;
    vt_rng rng;
    vt_rng_init(&rng, vt_hash4(seed, STREAM_IMAGE, 0, 0));
    st = shift->image(f, w, h, severity, &rng, err);
    if (st == VT_OK) {
        for (size_t i = 0; i < n; i++) {
            float v = f[i] != f[i] ? 0 : f[i] < 0 ? 0 : f[i] > 1 ? 1 : f[i];
            out[i] = (uint8_t)lrintf(v * 255.0f);
        }
    } else {
        vt_error_prefix(err, "shift %s severity %d: ", shift->name, severity);
    }
    free(f);
    return st;
}

vt_status vt_shift_apply_text(const vt_shift *shift, int severity, uint64_t seed, vt_shift_env *env,
                              const char *text, char **out, vt_error *err) {
    *out = NULL;
    vt_status st = check_severity(shift, severity, err);
    if (st != VT_OK) return st;
    if (!text) return vt_fail(err, VT_ERR_ARG, "shift %s: no text given", shift->name);
    if (!shift->text) {
        *out = strdup(text);
        return *out ? VT_OK : vt_fail(err, VT_ERR_NOMEM, "shift %s: out of memory", shift->name);
    }
    vt_rng rng;
    vt_rng_init(&rng, vt_hash4(seed, STREAM_TEXT, 0, 0));
    st = shift->text(text, severity, &rng, env, out, err);
    if (st != VT_OK) vt_error_prefix(err, "shift %s severity %d: ", shift->name, severity);
    return st;
}

vt_status vt_shift_hook(void *ctx, uint64_t index, uint8_t *rgb, int w, int h, char **question, vt_error *err) {
    const vt_shift_hook_ctx *c = ctx;
    if (!c || !c->shift) return vt_fail(err, VT_ERR_ARG, "shift hook: no shift in the context");
    uint64_t seed = vt_shift_seed(index, c->shift, c->severity);
    vt_status st = VT_OK;
    if (rgb && c->shift->image) st = vt_shift_apply_image(c->shift, c->severity, seed, rgb, w, h, rgb, err);
    if (st == VT_OK && question && *question && c->shift->text) {
        char *out;
        st = vt_shift_apply_text(c->shift, c->severity, seed, c->env, *question, &out, err);
        if (st == VT_OK) {
            free(*question);
            *question = out;
        }
    } else if (st == VT_OK) {
        st = check_severity(c->shift, c->severity, err);
    }
    if (st != VT_OK) vt_error_prefix(err, "item %llu: ", (unsigned long long)index);
    return st;
}
