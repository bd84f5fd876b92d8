/* `vistune shift`: list the catalog, apply one shift to an image file or an
 * instruction so a person can look at it, and render a contact sheet of
 * every visual shift. Image files go through pipeline/image.h. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/image.h"
#include "pipeline/shift.h"
#include "pipeline/shift_scene.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune shift --list\n"
            "       vistune shift NAME --severity S --in IMG --out OUT.png [--seed N] [--size PX]\n"
            "       vistune shift NAME --severity S --text \"INSTRUCTION\" [--seed N]\n"
            "       vistune shift --sheet OUT.png [--in IMG] [--tile PX] [--severities 1,3,5]\n"
            "Apply a distribution shift from the versioned catalog (docs/shifts.md).\n"
            "  --list             name, family, modality and severity parameters of every shift\n"
            "  --severity S       1..5\n"
            "  --in IMG           input image (PNG, JPEG or WebP); 'scene' = the built-in test scene\n"
            "  --out OUT.png      shifted image, written as PNG\n"
            "  --text STR         instruction to perturb; the result is printed on stdout\n"
            "  --seed N           item id the shift's randomness is derived from (default 0)\n"
            "  --item ID          string item id instead of --seed (hashed)\n"
            "  --size PX          centre-crop and resize the input to PX x PX first (model resolution)\n"
            "  --wordnet DIR      WordNet database (default $VT_WORDNET_DIR or /usr/share/wordnet)\n"
            "  --sheet OUT.png    contact sheet: one row per visual shift, clean + chosen severities\n"
            "  --tile PX          sheet tile size (default 96)\n"
            "  --severities LIST  sheet columns (default 1,3,5)\n");
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static const char *modality_name(vt_shift_modality m) {
    return m == VT_SHIFT_IMAGE ? "image" : m == VT_SHIFT_TEXT ? "text" : "joint";
}

static void list_catalog(void) {
    printf("shift catalog version %d: %zu shifts x %d severities\n", VT_SHIFT_CATALOG_VERSION, vt_shift_count(),
           VT_SHIFT_SEVERITIES);
    printf("%-24s %-10s %-6s %s\n", "NAME", "FAMILY", "MODAL.", "SEVERITY PARAMETERS s1/s2/s3/s4/s5  [source]");
    for (size_t i = 0; i < vt_shift_count(); i++) {
        const vt_shift *s = vt_shift_at(i);
        printf("%-24s %-10s %-6s %s  [%s]\n", s->name, s->family, modality_name(s->modality), s->params, s->note);
    }
}

/* Loads --in (or the scene) and optionally fits it to size x size. */
static vt_status load_input(const char *path, int size, vt_image *img, vt_error *err) {
    vt_status st;
    if (!strcmp(path, "scene")) {
        int side = size > 0 ? size : 224;
        if ((st = vt_image_alloc(img, side, side, err)) != VT_OK) return st;
        vt_shift_scene(img->rgb, side, side, 7);
        return VT_OK;
    }
    if ((st = vt_image_load(path, NULL, img, err)) != VT_OK) return st;
    if (size > 0) {
        vt_image fit;
        st = vt_image_fit_square(img, size, VT_FIT_CROP, NULL, &fit, err);
        vt_image_free(img);
        if (st != VT_OK) return st;
        *img = fit;
    }
    return VT_OK;
}

static vt_status render_sheet(const char *in, const char *out, int tile, const int *sevs, int nsev, uint64_t seed,
                              vt_error *err) {
    vt_image src = {0}, sheet = {0}, shifted = {0};
    vt_status st = load_input(in ? in : "scene", tile, &src, err);
    if (st != VT_OK) return st;
    size_t rows = 0;
    for (size_t i = 0; i < vt_shift_count(); i++) rows += vt_shift_at(i)->modality == VT_SHIFT_IMAGE;
    const int gap = 2, cols = 1 + nsev;
    int W = cols * tile + (cols + 1) * gap, H = (int)rows * tile + ((int)rows + 1) * gap;
    if ((st = vt_image_alloc(&sheet, W, H, err)) != VT_OK) goto done;
    if ((st = vt_image_alloc(&shifted, tile, tile, err)) != VT_OK) goto done;
    memset(sheet.rgb, 255, (size_t)W * H * 3);
    int r = 0;
    for (size_t i = 0; i < vt_shift_count(); i++) {
        const vt_shift *s = vt_shift_at(i);
        if (s->modality != VT_SHIFT_IMAGE) continue;
        for (int c = 0; c < cols; c++) {
            const uint8_t *px = src.rgb;
            if (c > 0) {
                st = vt_shift_apply_image(s, sevs[c - 1], vt_shift_seed(seed, s, sevs[c - 1]), src.rgb, tile, tile,
                                          shifted.rgb, err);
                if (st != VT_OK) goto done;
                px = shifted.rgb;
            }
            int x0 = gap + c * (tile + gap), y0 = gap + r * (tile + gap);
            for (int y = 0; y < tile; y++)
                memcpy(sheet.rgb + ((size_t)(y0 + y) * W + x0) * 3, px + (size_t)y * tile * 3, (size_t)tile * 3);
        }
        r++;
    }
    st = vt_image_save_png(&sheet, out, err);
done:
    vt_image_free(&src), vt_image_free(&sheet), vt_image_free(&shifted);
    return st;
}

int vt_cmd_shift(int argc, char **argv) {
    enum { O_LIST = 1, O_SEV, O_IN, O_OUT, O_TEXT, O_SEED, O_ITEM, O_SIZE, O_WN, O_SHEET, O_TILE, O_SEVS, O_HELP };
    static const struct option opts[] = {
        {"list", no_argument, 0, O_LIST},        {"severity", required_argument, 0, O_SEV},
        {"in", required_argument, 0, O_IN},      {"out", required_argument, 0, O_OUT},
        {"text", required_argument, 0, O_TEXT},  {"seed", required_argument, 0, O_SEED},
        {"item", required_argument, 0, O_ITEM},  {"size", required_argument, 0, O_SIZE},
        {"wordnet", required_argument, 0, O_WN}, {"sheet", required_argument, 0, O_SHEET},
        {"tile", required_argument, 0, O_TILE},  {"severities", required_argument, 0, O_SEVS},
        {"help", no_argument, 0, O_HELP},        {0, 0, 0, 0}};
    int list = 0, nsev = 3, sevs[VT_SHIFT_SEVERITIES] = {1, 3, 5};
    long severity = 0, size = 0, tile = 96;
    uint64_t seed = 0;
    const char *in = NULL, *out = NULL, *text = NULL, *wordnet = NULL, *sheet = NULL;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_LIST: list = 1; break;
        case O_SEV:
            if (parse_int(optarg, 1, VT_SHIFT_SEVERITIES, &severity) != 0) {
                fprintf(stderr, "vistune shift: --severity '%s': expected 1..%d\n", optarg, VT_SHIFT_SEVERITIES);
                return 2;
            }
            break;
        case O_IN: in = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TEXT: text = optarg; break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-') {
                fprintf(stderr, "vistune shift: --seed '%s': expected a non-negative integer\n", optarg);
                return 2;
            }
            seed = v;
            break;
        }
        case O_ITEM: seed = vt_shift_item_key(optarg); break;
        case O_SIZE:
            if (parse_int(optarg, VT_SHIFT_MIN_SIDE, VT_SHIFT_MAX_SIDE, &size) != 0) {
                fprintf(stderr, "vistune shift: --size '%s': expected %d..%d\n", optarg, VT_SHIFT_MIN_SIDE,
                        VT_SHIFT_MAX_SIDE);
                return 2;
            }
            break;
        case O_WN: wordnet = optarg; break;
        case O_SHEET: sheet = optarg; break;
        case O_TILE:
            if (parse_int(optarg, VT_SHIFT_MIN_SIDE, 1024, &tile) != 0) {
                fprintf(stderr, "vistune shift: --tile '%s': expected %d..1024\n", optarg, VT_SHIFT_MIN_SIDE);
                return 2;
            }
            break;
        case O_SEVS: {
            nsev = 0;
            char buf[64];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                long v;
                if (nsev == VT_SHIFT_SEVERITIES || parse_int(tok, 1, VT_SHIFT_SEVERITIES, &v) != 0) {
                    fprintf(stderr, "vistune shift: --severities '%s': expected up to 5 of 1..5, comma-separated\n",
                            optarg);
                    return 2;
                }
                sevs[nsev++] = (int)v;
            }
            if (nsev == 0) {
                fprintf(stderr, "vistune shift: --severities is empty\n");
                return 2;
            }
            break;
        }
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune shift: unknown or incomplete option '%s' (see vistune shift --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (list) {
        list_catalog();
        return 0;
    }
    vt_error err;
    vt_error_clear(&err);
    if (sheet) {
        if (render_sheet(in, sheet, (int)tile, sevs, nsev, seed, &err) != VT_OK) {
            fprintf(stderr, "vistune shift: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vistune shift: expected one shift NAME (or --list / --sheet; see vistune shift --help)\n");
        return 2;
    }
    const vt_shift *s;
    if (vt_shift_find(argv[optind], &s, &err) != VT_OK) {
        fprintf(stderr, "vistune shift: %s\n", err.msg);
        return 2;
    }
    if (!severity) {
        fprintf(stderr, "vistune shift: %s: --severity 1..%d is required\n", s->name, VT_SHIFT_SEVERITIES);
        return 2;
    }
    if ((in != NULL) != (out != NULL)) {
        fprintf(stderr, "vistune shift: --in and --out go together\n");
        return 2;
    }
    if (!in && !text) {
        fprintf(stderr, "vistune shift: %s: give --in/--out (image) and/or --text (instruction)\n", s->name);
        return 2;
    }
    if (in && !s->image) {
        fprintf(stderr, "vistune shift: %s changes instructions only: use --text\n", s->name);
        return 2;
    }
    if (text && !s->text) {
        fprintf(stderr, "vistune shift: %s changes images only: use --in/--out\n", s->name);
        return 2;
    }
    uint64_t item_seed = vt_shift_seed(seed, s, (int)severity);
    int rc = 0;
    if (in) {
        vt_image img = {0};
        vt_status st = load_input(in, (int)size, &img, &err);
        if (st == VT_OK) st = vt_shift_apply_image(s, (int)severity, item_seed, img.rgb, img.width, img.height,
                                                   img.rgb, &err);
        if (st == VT_OK) st = vt_image_save_png(&img, out, &err);
        vt_image_free(&img);
        if (st != VT_OK) {
            fprintf(stderr, "vistune shift: %s\n", err.msg);
            return 1;
        }
    }
    if (text) {
        vt_shift_env *env = NULL;
        char *res = NULL;
        vt_status st = vt_shift_env_open(&env, wordnet, &err);
        if (st == VT_OK) st = vt_shift_apply_text(s, (int)severity, item_seed, env, text, &res, &err);
        if (st == VT_OK) printf("%s\n", res);
        else fprintf(stderr, "vistune shift: %s\n", err.msg), rc = 1;
        free(res);
        vt_shift_env_close(env);
    }
    return rc;
}
