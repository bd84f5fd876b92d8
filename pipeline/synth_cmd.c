/* `vistune synth`: writes the shapes set as LLaVA JSON + PNG images into a
 * directory that appears only when complete. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "pipeline/outdir.h"
#include "pipeline/synth.h"

static cJSON *entry_json(uint64_t index, const vt_synth_item *it) {
    char id[32], image[48], human[VT_SYNTH_TEXT_MAX + 16];
    snprintf(id, sizeof id, "shapes-%09llu", (unsigned long long)index);
    snprintf(image, sizeof image, "images/%09llu.png", (unsigned long long)index);
    snprintf(human, sizeof human, "<image>\n%s", it->question);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "id", id);
    cJSON_AddStringToObject(e, "image", image);
    cJSON *conv = cJSON_AddArrayToObject(e, "conversations");
    cJSON *h = cJSON_CreateObject(), *g = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "from", "human");
    cJSON_AddStringToObject(h, "value", human);
    cJSON_AddStringToObject(g, "from", "gpt");
    cJSON_AddStringToObject(g, "value", it->answer);
    cJSON_AddItemToArray(conv, h);
    cJSON_AddItemToArray(conv, g);
    cJSON_AddStringToObject(e, "task", vt_synth_task_name(it->task));
    cJSON_AddNumberToObject(e, "group", it->group);
    cJSON_AddStringToObject(e, "answer_raw", it->answer_raw);
    return e;
}

static vt_status write_into(const char *tmp, const vt_synth_opts *o, vt_error *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/images", tmp);
    vt_status st = vt_mkdir_p(path, err);
    if (st != VT_OK) return st;
    cJSON *root = cJSON_CreateArray();
    if (!root) return vt_fail(err, VT_ERR_NOMEM, "synth: out of memory");
    for (uint64_t i = 0; i < o->count && st == VT_OK; i++) {
        vt_image img;
        vt_synth_item it;
        st = vt_synth_make_ex(o->seed, i, o->size, &o->params, &img, &it, err);
        if (st != VT_OK) break;
        uint8_t *png;
        size_t len;
        st = vt_image_encode_png(&img, &png, &len, err);
        vt_image_free(&img);
        if (st != VT_OK) break;
        snprintf(path, sizeof path, "%s/images/%09llu.png", tmp, (unsigned long long)i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
            st = vt_fail_errno(err, VT_ERR_IO, "%s: write failed", path);
            if (f) fclose(f);
        }
        free(png);
        cJSON *e = entry_json(i, &it);
        if (!e) st = vt_fail(err, VT_ERR_NOMEM, "synth: out of memory");
        else cJSON_AddItemToArray(root, e);
    }
    if (st == VT_OK) {
        char *text = cJSON_Print(root);
        if (!text) {
            st = vt_fail(err, VT_ERR_NOMEM, "synth: out of memory");
        } else {
            snprintf(path, sizeof path, "%s/data.json", tmp);
            st = vt_write_file_atomic(path, text, strlen(text), err);
            cJSON_free(text);
        }
    }
    cJSON_Delete(root);
    return st;
}

vt_status vt_synth_write(const char *out_dir, const vt_synth_opts *o, vt_error *err) {
    if (o->size < 16 || o->size > 1024)
        return vt_fail(err, VT_ERR_ARG, "--size %d is outside 16..1024", o->size);
    char tmp[PATH_MAX];
    vt_status st = vt_outdir_begin(out_dir, o->force, tmp, sizeof tmp, err);
    if (st != VT_OK) return st;
    st = write_into(tmp, o, err);
    if (st != VT_OK) {
        vt_outdir_abort(tmp);
        return st;
    }
    return vt_outdir_commit(tmp, out_dir, o->force, err);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune synth --out DIR --count N --seed S [--size PX] [--max-shapes K]\n"
            "                     [--tasks LIST] [--force]\n"
            "Write the built-in shapes visual-question set: DIR/data.json (LLaVA format)\n"
            "and DIR/images/*.png. Deterministic in the seed; DIR appears only when complete.\n"
            "  --out DIR     output directory (must not exist unless --force)\n"
            "  --count N     number of items (1..100000000)\n"
            "  --seed S      seed (item i depends only on S and i)\n"
            "  --size PX     canvas side in pixels, 16..1024 (default 64)\n"
            "  --max-shapes K  at most K shapes per image, 2..4 (default 4)\n"
            "  --tasks LIST  only these question types, comma-separated (plain answers,\n"
            "                no groups 7-8), e.g. count,color (default: all, groups 0-8)\n"
            "  --force       replace DIR if it exists\n"
            "Question types: color, shape, count, position, exist, small_color, grid;\n"
            "groups 0-6 = those types, 7 = answers in uppercase, 8 = answers as \"answer: X\".\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return -1;
    *out = v;
    return 0;
}

int vt_cmd_synth(int argc, char **argv) {
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                              {"count", required_argument, 0, 'n'},
                                              {"seed", required_argument, 0, 's'},
                                              {"size", required_argument, 0, 'z'},
                                              {"max-shapes", required_argument, 0, 'm'},
                                              {"tasks", required_argument, 0, 't'},
                                              {"force", no_argument, 0, 'f'},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};
    vt_synth_opts o = {.seed = 0, .count = 0, .size = 64};
    const char *out = NULL;
    int have_count = 0, have_seed = 0;
    uint64_t v;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'n':
            if (parse_u64(optarg, &o.count) || o.count == 0 || o.count > 100000000) {
                fprintf(stderr, "vistune synth: --count '%s' must be an integer in 1..100000000\n", optarg);
                return 2;
            }
            have_count = 1;
            break;
        case 's':
            if (parse_u64(optarg, &o.seed)) {
                fprintf(stderr, "vistune synth: --seed '%s' must be a non-negative integer\n", optarg);
                return 2;
            }
            have_seed = 1;
            break;
        case 'z':
            if (parse_u64(optarg, &v) || v < 16 || v > 1024) {
                fprintf(stderr, "vistune synth: --size '%s' must be an integer in 16..1024\n", optarg);
                return 2;
            }
            o.size = (int)v;
            break;
        case 'm':
            if (parse_u64(optarg, &v) || v < 2 || v > VT_SYNTH_MAX_SHAPES) {
                fprintf(stderr, "vistune synth: --max-shapes '%s' must be an integer in 2..%d\n", optarg,
                        VT_SYNTH_MAX_SHAPES);
                return 2;
            }
            o.params.max_shapes = (int)v;
            break;
        case 't': {
            vt_error e = {0};
            if (vt_synth_parse_tasks(optarg, &o.params.task_mask, &e) != VT_OK) {
                fprintf(stderr, "vistune synth: %s\n", e.msg);
                return 2;
            }
            break;
        }
        case 'f': o.force = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune synth: bad option '%s' (see vistune synth --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vistune synth: unexpected argument '%s' (see vistune synth --help)\n", argv[optind]);
        return 2;
    }
    if (!out || !have_count || !have_seed) {
        fprintf(stderr, "vistune synth: --out, --count and --seed are required (see vistune synth --help)\n");
        return 2;
    }
    vt_error err = {0};
    if (vt_synth_write(out, &o, &err) != VT_OK) {
        fprintf(stderr, "vistune synth: %s\n", err.msg);
        return 1;
    }
    printf("synth: wrote %llu items (%dx%d, seed %llu) to %s\n", (unsigned long long)o.count, o.size,
           o.size, (unsigned long long)o.seed, out);
    return 0;
}
