/* `vistune inspect`: a store's manifest summary and one record (turns, task,
 * group, split, provenance, image size), optionally its image as a PNG. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/image.h"
#include "pipeline/inspect.h"
#include "pipeline/store.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune inspect DB [--index I] [--dump-image FILE.png]\n"
            "Print a store's counts, schema version and one record (default: index 0).\n"
            "  --index I            which record to show\n"
            "  --dump-image FILE    write that record's image as PNG\n");
}

static void print_counts(const cJSON *obj, const char *label) {
    if (!cJSON_IsObject(obj)) return;
    printf("%s:", label);
    for (const cJSON *e = obj->child; e; e = e->next) printf(" %s=%.0f", e->string, e->valuedouble);
    printf("\n");
}

static double num(const cJSON *m, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *m, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static const char *role_name(Vt__Role r) {
    switch (r) {
    case VT__ROLE__ROLE_USER: return "user";
    case VT__ROLE__ROLE_ASSISTANT: return "assistant";
    case VT__ROLE__ROLE_SYSTEM: return "system";
    default: return "?";
    }
}

static const char *split_name(Vt__Split s) {
    switch (s) {
    case VT__SPLIT__SPLIT_TRAIN: return "train";
    case VT__SPLIT__SPLIT_VAL: return "val";
    case VT__SPLIT__SPLIT_TEST: return "test";
    default: return "unspecified";
    }
}

static vt_status show_record(vt_store *s, uint64_t index, const char *dump, vt_error *err) {
    vt_store_txn *t;
    vt_status st = vt_store_txn_begin(s, &t, err);
    if (st != VT_OK) return st;
    Vt__Sample *rec;
    st = vt_store_get_sample(t, index, NULL, &rec, err);
    if (st != VT_OK) {
        vt_store_txn_end(t);
        return st;
    }
    char key[VT_STORE_KEY_LEN + 1];
    vt_store_key(index, key);
    printf("record %" PRIu64 " (key %s): split=%s task=%s group=%u schema_version=%u\n", index, key,
           split_name(rec->split), rec->task ? rec->task : "", rec->group_id, rec->schema_version);
    if (rec->image)
        printf("  image: %ux%u WebP %s, %zu bytes; source %ux%u\n", rec->image->width,
               rec->image->height, rec->image->lossless ? "lossless" : "lossy", rec->image->webp.len,
               rec->image->source_width, rec->image->source_height);
    if (rec->provenance)
        printf("  provenance: source=%s id=%s image=%s sha256=%s%s%s\n", rec->provenance->source,
               rec->provenance->source_id, rec->provenance->image_path,
               rec->provenance->image_sha256,
               rec->provenance->license && *rec->provenance->license ? " license=" : "",
               rec->provenance->license ? rec->provenance->license : "");
    for (size_t k = 0; k < rec->n_turns; k++) {
        printf("  [%s] ", role_name(rec->turns[k]->role));
        for (const char *p = rec->turns[k]->text; *p; p++) {
            if (*p == '\n') fputs("\\n", stdout);
            else putchar(*p);
        }
        putchar('\n');
    }
    if (dump) {
        if (!rec->image || !rec->image->webp.len) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: key %s has no image", vt_store_path(s), key);
        } else {
            vt_image img;
            char name[64];
            snprintf(name, sizeof name, "key %s", key);
            st = vt_image_decode(rec->image->webp.data, rec->image->webp.len, name, NULL, &img, err);
            if (st == VT_OK) {
                st = vt_image_save_png(&img, dump, err);
                vt_image_free(&img);
                if (st == VT_OK) printf("  wrote %s\n", dump);
            }
        }
    }
    vt__sample__free_unpacked(rec, NULL);
    vt_store_txn_end(t);
    return st;
}

int vt_cmd_inspect(int argc, char **argv) {
    static const struct option longopts[] = {{"index", required_argument, 0, 'i'},
                                              {"dump-image", required_argument, 0, 'd'},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};
    uint64_t index = 0;
    int have_index = 0;
    const char *dump = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': {
            char *end;
            if (!*optarg || *optarg == '-') goto bad_index;
            index = strtoull(optarg, &end, 10);
            if (*end) goto bad_index;
            have_index = 1;
            break;
        bad_index:
            fprintf(stderr, "vistune inspect: --index '%s' must be a non-negative integer\n", optarg);
            return 2;
        }
        case 'd': dump = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune inspect: bad option '%s' (see vistune inspect --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vistune inspect: expected exactly one store directory (see vistune inspect --help)\n");
        return 2;
    }
    const char *dir = argv[optind];
    vt_error err = {0};
    vt_store *s;
    if (vt_store_open(dir, &s, &err) != VT_OK) {
        fprintf(stderr, "vistune inspect: %s\n", err.msg);
        return 1;
    }
    const cJSON *m = vt_store_manifest(s);
    printf("store: %s\n", dir);
    printf("format: %s  schema_version: %.0f  vistune: %s  source: %s\n", str(m, "format"),
           num(m, "schema_version"), str(m, "vistune_version"), str(m, "source"));
    printf("records: %" PRIu64 " (input %.0f, rejected %.0f)\n", vt_store_count(s),
           num(m, "input_count"), num(m, "rejected"));
    print_counts(cJSON_GetObjectItemCaseSensitive(m, "splits"), "splits");
    print_counts(cJSON_GetObjectItemCaseSensitive(m, "tasks"), "tasks");
    print_counts(cJSON_GetObjectItemCaseSensitive(m, "groups"), "groups");
    printf("bytes: records %.0f, images %.0f; content_sha256 %s\n", num(m, "record_bytes"),
           num(m, "image_bytes"), str(m, "content_sha256"));
    int rc = 0;
    if (vt_store_count(s) > 0 || have_index) {
        if (show_record(s, index, dump, &err) != VT_OK) {
            fprintf(stderr, "vistune inspect: %s\n", err.msg);
            rc = 1;
        }
    } else if (dump) {
        fprintf(stderr, "vistune inspect: %s: the store is empty, no image to dump\n", dir);
        rc = 1;
    }
    vt_store_close(s);
    return rc;
}
