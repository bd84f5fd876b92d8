/* Ingest engine: parse the LLaVA JSON once, then a pool of workers turns
 * entries into ready-to-store results (validated turns + WebP bytes) or
 * reject reasons, while the calling thread writes them in input order.
 * Workers run at most WINDOW entries ahead of the writer, which bounds
 * memory to WINDOW encoded images whatever the input size. */
#include "pipeline/ingest.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "pipeline/store.h"

#define MAX_JSON_BYTES (8ull << 30)

vt_ingest_opts vt_ingest_opts_default(void) {
    vt_ingest_opts o = {0};
    o.size = 336;
    o.fit = VT_FIT_PAD;
    o.quality = 90;
    return o;
}

long vt_utf8_invalid_at(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int n;
        unsigned min, cp;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; min = 0x80; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; min = 0x800; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; min = 0x10000; cp = c & 0x07; }
        else return (long)i;
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += (size_t)n + 1;
    }
    return -1;
}

/* --- one entry -> result --- */

typedef struct result {
    int ready;
    int rejected;
    char reason[32];
    char detail[VT_ERROR_MSG_MAX];
    vt_status fatal; /* out of memory etc.: stops the ingest */
    vt_error fatal_err;
    /* accepted */
    char id[256];
    uint8_t *webp;
    size_t webp_len;
    uint32_t width, height, src_width, src_height;
    int nturns;
    Vt__Role *roles;
    const char **texts; /* point into the cJSON tree (alive until the end) */
    const char *task, *image_path, *license, *source;
    uint32_t group;
    Vt__Split split;
    char sha[65];
} result;

typedef struct job {
    const vt_ingest_opts *o;
    cJSON **entries;
    uint64_t n;
    result *slots;
    uint64_t window;
    pthread_mutex_t mu;
    pthread_cond_t ready_cv, space_cv;
    uint64_t next_claim, next_consume;
    int stop;
} job;

static void reject(result *r, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(result *r, const char *reason, const char *fmt, ...) {
    r->rejected = 1;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

static int path_is_safe(const char *p) {
    if (p[0] == '/' || !p[0]) return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
        if (!e) break;
        s = e + 1;
    }
    return 1;
}

static int check_text(result *r, const char *what, const char *s) {
    long bad = vt_utf8_invalid_at(s, strlen(s));
    if (bad < 0) return 1;
    reject(r, "invalid_utf8", "%s: invalid UTF-8 at byte %ld", what, bad);
    return 0;
}

static Vt__Split parse_split(const char *s) {
    if (!strcmp(s, "train")) return VT__SPLIT__SPLIT_TRAIN;
    if (!strcmp(s, "val") || !strcmp(s, "validation")) return VT__SPLIT__SPLIT_VAL;
    if (!strcmp(s, "test")) return VT__SPLIT__SPLIT_TEST;
    return VT__SPLIT__SPLIT_UNSPECIFIED;
}

/* Validates the entry's text fields; fills id, turns, task, group, split. */
static int parse_entry(const job *j, uint64_t i, const cJSON *e, result *r) {
    if (!cJSON_IsObject(e)) {
        reject(r, "bad_entry", "entry is not a JSON object");
        return 0;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    if (cJSON_IsString(id)) snprintf(r->id, sizeof r->id, "%s", id->valuestring);
    else if (cJSON_IsNumber(id)) snprintf(r->id, sizeof r->id, "%.17g", id->valuedouble);
    else snprintf(r->id, sizeof r->id, "#%llu", (unsigned long long)i);
    if (!check_text(r, "id", r->id)) return 0;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(e, "image");
    if (!cJSON_IsString(img)) {
        reject(r, "no_image", "entry has no \"image\" string (text-only entries are not supported)");
        return 0;
    }
    if (!check_text(r, "image", img->valuestring)) return 0;
    if (!path_is_safe(img->valuestring)) {
        reject(r, "bad_image_path", "image path '%s' is absolute, empty or leaves the images directory",
               img->valuestring);
        return 0;
    }
    r->image_path = img->valuestring;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(e, "conversations");
    int n = cJSON_IsArray(conv) ? cJSON_GetArraySize(conv) : -1;
    if (n < 2) {
        reject(r, "bad_entry", "\"conversations\" must be an array of at least two turns");
        return 0;
    }
    r->roles = calloc((size_t)n, sizeof *r->roles);
    r->texts = calloc((size_t)n, sizeof *r->texts);
    if (!r->roles || !r->texts) {
        r->fatal = vt_fail(&r->fatal_err, VT_ERR_NOMEM, "out of memory");
        return 0;
    }
    r->nturns = n;
    int k = 0, tokens = 0, first_user = -1, token_turn = -1, answers = 0;
    for (const cJSON *t = conv->child; t; t = t->next, k++) {
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(t, "value");
        if (!cJSON_IsString(from) || !cJSON_IsString(value)) {
            reject(r, "bad_entry", "conversations[%d] needs string \"from\" and \"value\"", k);
            return 0;
        }
        const char *f = from->valuestring;
        if (!strcmp(f, "human") || !strcmp(f, "user")) r->roles[k] = VT__ROLE__ROLE_USER;
        else if (!strcmp(f, "gpt") || !strcmp(f, "assistant")) r->roles[k] = VT__ROLE__ROLE_ASSISTANT;
        else if (!strcmp(f, "system")) r->roles[k] = VT__ROLE__ROLE_SYSTEM;
        else {
            reject(r, "bad_entry", "conversations[%d].from '%.40s' is not human, gpt or system", k, f);
            return 0;
        }
        char what[64];
        snprintf(what, sizeof what, "conversations[%d].value", k);
        if (!check_text(r, what, value->valuestring)) return 0;
        r->texts[k] = value->valuestring;
        if (r->roles[k] == VT__ROLE__ROLE_USER && first_user < 0) first_user = k;
        if (r->roles[k] == VT__ROLE__ROLE_ASSISTANT) answers++;
        for (const char *p = value->valuestring; (p = strstr(p, "<image>")); p += 7) {
            tokens++;
            token_turn = k;
        }
    }
    if (tokens == 0) {
        reject(r, "no_image_token", "no \"<image>\" placeholder in the conversation");
        return 0;
    }
    if (tokens > 1 || token_turn != first_user) {
        reject(r, "image_token_count",
               "%d \"<image>\" placeholders; exactly one is expected, in the first human turn", tokens);
        return 0;
    }
    if (!answers) {
        reject(r, "bad_entry", "the conversation has no gpt turn to learn from");
        return 0;
    }
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(e, "task");
    r->task = cJSON_IsString(task) ? task->valuestring : "";
    if (!check_text(r, "task", r->task)) return 0;
    const cJSON *group = cJSON_GetObjectItemCaseSensitive(e, "group");
    if (group && (!cJSON_IsNumber(group) || group->valuedouble < 0 || group->valuedouble > 4294967295.0 ||
                  group->valuedouble != (double)(uint32_t)group->valuedouble)) {
        reject(r, "bad_entry", "\"group\" must be a non-negative integer below 2^32");
        return 0;
    }
    r->group = group ? (uint32_t)group->valuedouble : 0;
    const cJSON *lic = cJSON_GetObjectItemCaseSensitive(e, "license");
    r->license = cJSON_IsString(lic) ? lic->valuestring : NULL;
    if (r->license && !check_text(r, "license", r->license)) return 0;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(e, "source");
    r->source = cJSON_IsString(src) ? src->valuestring : NULL;
    if (r->source && !check_text(r, "source", r->source)) return 0;
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(e, "split");
    if (split) {
        r->split = cJSON_IsString(split) ? parse_split(split->valuestring) : VT__SPLIT__SPLIT_UNSPECIFIED;
        if (r->split == VT__SPLIT__SPLIT_UNSPECIFIED) {
            reject(r, "bad_entry", "\"split\" must be \"train\", \"val\" or \"test\"");
            return 0;
        }
    } else {
        uint64_t h = vt_hash_bytes(r->id, strlen(r->id), j->o->seed);
        double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
        r->split = u < j->o->val_fraction ? VT__SPLIT__SPLIT_VAL : VT__SPLIT__SPLIT_TRAIN;
    }
    return 1;
}

static void process(const job *j, uint64_t i, result *r) {
    const vt_ingest_opts *o = j->o;
    if (!parse_entry(j, i, j->entries[i], r)) return;
    char path[PATH_MAX];
    vt_error e = {0};
    if (vt_path_join(path, sizeof path, o->images_dir, r->image_path, &e) != VT_OK) {
        reject(r, "bad_image_path", "%s", e.msg);
        return;
    }
    if (!vt_path_exists(path)) {
        reject(r, "missing_image", "%s: image file not found", path);
        return;
    }
    char *bytes;
    size_t len;
    vt_status st = vt_read_file(path, VT_IMAGE_MAX_FILE_BYTES_DEFAULT, &bytes, &len, &e);
    if (st != VT_OK) {
        reject(r, "unreadable_image", "%s", e.msg);
        return;
    }
    vt_sha256_hex(bytes, len, r->sha);
    vt_decode_opts dopts = vt_decode_opts_default();
    dopts.max_pixels = o->max_pixels;
    vt_image src, fitted;
    st = vt_image_decode(bytes, len, path, &dopts, &src, &e);
    free(bytes);
    if (st == VT_ERR_RANGE) { reject(r, "image_too_large", "%s", e.msg); return; }
    if (st == VT_ERR_NOMEM) { r->fatal = st; r->fatal_err = e; return; }
    if (st != VT_OK) { reject(r, "corrupt_image", "%s", e.msg); return; }
    r->src_width = (uint32_t)src.width;
    r->src_height = (uint32_t)src.height;
    if (o->size > 0) {
        st = vt_image_fit_square(&src, o->size, o->fit, NULL, &fitted, &e);
        vt_image_free(&src);
        if (st != VT_OK) { r->fatal = st; r->fatal_err = e; return; }
    } else {
        fitted = src;
    }
    st = vt_image_encode_webp(&fitted, o->quality, o->lossless, &r->webp, &r->webp_len, &e);
    r->width = (uint32_t)fitted.width;
    r->height = (uint32_t)fitted.height;
    vt_image_free(&fitted);
    if (st == VT_ERR_RANGE) { reject(r, "image_too_large", "%s: %s", path, e.msg); return; }
    if (st != VT_OK) { r->fatal = st; r->fatal_err = e; return; }
}

static void result_clear(result *r) {
    free(r->webp);
    free(r->roles);
    free(r->texts);
    memset(r, 0, sizeof *r);
}

static void *worker(void *arg) {
    job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stop && j->next_claim < j->n && j->next_claim >= j->next_consume + j->window)
            pthread_cond_wait(&j->space_cv, &j->mu);
        if (j->stop || j->next_claim >= j->n) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        uint64_t i = j->next_claim++;
        pthread_mutex_unlock(&j->mu);
        result r = {0};
        process(j, i, &r);
        pthread_mutex_lock(&j->mu);
        j->slots[i % j->window] = r;
        j->slots[i % j->window].ready = 1;
        pthread_cond_broadcast(&j->ready_cv);
        pthread_mutex_unlock(&j->mu);
    }
}

/* Writes result i (accepted or rejected) to the store. */
static vt_status consume(const job *j, vt_store_writer *w, uint64_t i, result *r, vt_error *err) {
    const vt_ingest_opts *o = j->o;
    if (r->fatal) {
        *err = r->fatal_err;
        vt_error_prefix(err, "entry %llu ('id'=%s): ", (unsigned long long)i, r->id);
        return r->fatal;
    }
    if (r->rejected) {
        if (o->strict)
            return vt_fail(err, VT_ERR_FORMAT, "%s: entry %llu ('id'=%s): %s (%s)", o->json_path,
                           (unsigned long long)i, r->id[0] ? r->id : "?", r->detail, r->reason);
        return vt_store_writer_reject(w, i, r->id[0] ? r->id : NULL, r->reason, r->detail, err);
    }
    Vt__Sample s = VT__SAMPLE__INIT;
    Vt__Image img = VT__IMAGE__INIT;
    Vt__Provenance prov = VT__PROVENANCE__INIT;
    Vt__Turn *turns = calloc((size_t)r->nturns, sizeof *turns);
    Vt__Turn **tp = calloc((size_t)r->nturns, sizeof *tp);
    if (!turns || !tp) {
        free(turns);
        free(tp);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < r->nturns; k++) {
        vt__turn__init(&turns[k]);
        turns[k].role = r->roles[k];
        turns[k].text = (char *)r->texts[k];
        tp[k] = &turns[k];
    }
    img.webp.data = r->webp;
    img.webp.len = r->webp_len;
    img.width = r->width;
    img.height = r->height;
    img.lossless = o->lossless;
    img.source_width = r->src_width;
    img.source_height = r->src_height;
    prov.source = (char *)(r->source ? r->source : o->source ? o->source : "llava-json");
    prov.source_id = r->id;
    prov.image_path = (char *)r->image_path;
    prov.image_sha256 = r->sha;
    prov.license = (char *)(r->license ? r->license : o->license ? o->license : "");
    s.image = &img;
    s.n_turns = (size_t)r->nturns;
    s.turns = tp;
    s.task = (char *)r->task;
    s.group_id = r->group;
    s.split = r->split;
    s.provenance = &prov;
    vt_status st = vt_store_writer_put(w, &s, NULL, err);
    free(turns);
    free(tp);
    return st;
}

static vt_status parse_json(const vt_ingest_opts *o, char **text, cJSON **root, vt_error *err) {
    size_t len;
    vt_status st = vt_read_file(o->json_path, MAX_JSON_BYTES, text, &len, err);
    if (st != VT_OK) return st;
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(*text, len, &end, 0);
    if (!*root) {
        size_t off = end && end >= *text ? (size_t)(end - *text) : 0;
        if (off > len) off = len;
        size_t line = 1, col = 1;
        for (size_t k = 0; k < off; k++) {
            if ((*text)[k] == '\n') { line++; col = 1; }
            else col++;
        }
        return vt_fail(err, VT_ERR_FORMAT, "%s: malformed JSON at line %zu, column %zu (byte %zu)",
                       o->json_path, line, col, off);
    }
    if (!cJSON_IsArray(*root))
        return vt_fail(err, VT_ERR_FORMAT, "%s: the top level must be an array of entries",
                       o->json_path);
    return VT_OK;
}

static cJSON *settings_json(const vt_ingest_opts *o, int threads) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "json", o->json_path);
    cJSON_AddStringToObject(s, "images", o->images_dir);
    cJSON_AddNumberToObject(s, "size", o->size);
    cJSON_AddStringToObject(s, "resize", o->fit == VT_FIT_PAD ? "pad" : "crop");
    cJSON_AddStringToObject(s, "filter", "antialiased-bilinear");
    cJSON_AddBoolToObject(s, "lossless", o->lossless);
    cJSON_AddNumberToObject(s, "quality", o->quality);
    cJSON_AddNumberToObject(s, "val_fraction", o->val_fraction);
    cJSON_AddNumberToObject(s, "seed", (double)o->seed);
    cJSON_AddNumberToObject(s, "threads", threads);
    cJSON_AddStringToObject(s, "alpha_background", "white");
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

vt_status vt_ingest_run(const vt_ingest_opts *o, vt_ingest_stats *stats, vt_error *err) {
    double t0 = now_s();
    memset(stats, 0, sizeof *stats);
    if (!o->json_path || !o->images_dir || !o->out_dir)
        return vt_fail(err, VT_ERR_ARG, "ingest: json, images and out paths are required");
    if (o->size < 0 || o->size > 16383)
        return vt_fail(err, VT_ERR_ARG, "size %d is outside 0..16383", o->size);
    if (o->quality < 0 || o->quality > 100)
        return vt_fail(err, VT_ERR_ARG, "quality %d is outside 0..100", o->quality);
    if (!(o->val_fraction >= 0.0 && o->val_fraction <= 1.0))
        return vt_fail(err, VT_ERR_ARG, "val fraction %g is outside 0..1", o->val_fraction);
    if (!vt_is_dir(o->images_dir))
        return vt_fail(err, VT_ERR_IO, "%s: images directory does not exist", o->images_dir);
    int threads = o->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
    }

    /* The writer first: an unwritable or existing output fails before any work. */
    vt_store_writer_opts wo = {.map_size = o->map_size, .max_map_size = o->max_map_size,
                               .commit_every = o->commit_every, .overwrite = o->force,
                               .source = o->source ? o->source : "llava-json"};
    vt_store_writer *w;
    vt_status st = vt_store_writer_open(o->out_dir, &wo, &w, err);
    if (st != VT_OK) return st;
    char *text = NULL;
    cJSON *root = NULL;
    st = parse_json(o, &text, &root, err);
    if (st != VT_OK) {
        cJSON_Delete(root);
        free(text);
        vt_store_writer_abort(w);
        return st;
    }
    free(text); /* cJSON copied every string */
    job j = {.o = o};
    j.n = (uint64_t)cJSON_GetArraySize(root);
    j.window = (uint64_t)threads * 4;
    j.entries = malloc((j.n ? j.n : 1) * sizeof *j.entries);
    j.slots = calloc(j.window, sizeof *j.slots);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    if (!j.entries || !j.slots || !tids) {
        free(j.entries);
        free(j.slots);
        free(tids);
        cJSON_Delete(root);
        vt_store_writer_abort(w);
        return vt_fail(err, VT_ERR_NOMEM, "ingest: out of memory");
    }
    uint64_t k = 0;
    for (cJSON *e = root->child; e; e = e->next) j.entries[k++] = e;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.ready_cv, NULL);
    pthread_cond_init(&j.space_cv, NULL);
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, worker, &j) != 0) break;
    if (started == 0) st = vt_fail(err, VT_ERR_STATE, "ingest: cannot start worker threads");

    for (uint64_t i = 0; i < j.n && st == VT_OK; i++) {
        pthread_mutex_lock(&j.mu);
        result *slot = &j.slots[i % j.window];
        while (!slot->ready) pthread_cond_wait(&j.ready_cv, &j.mu);
        result r = *slot;
        memset(slot, 0, sizeof *slot);
        j.next_consume = i + 1;
        pthread_cond_broadcast(&j.space_cv);
        pthread_mutex_unlock(&j.mu);
        st = consume(&j, w, i, &r, err);
        if (!r.rejected && !r.fatal) stats->image_bytes += r.webp_len;
        result_clear(&r);
    }
    pthread_mutex_lock(&j.mu);
    j.stop = 1;
    pthread_cond_broadcast(&j.space_cv);
    pthread_mutex_unlock(&j.mu);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    for (uint64_t s = 0; s < j.window; s++) result_clear(&j.slots[s]);
    free(tids);
    free(j.slots);
    free(j.entries);
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.ready_cv);
    pthread_cond_destroy(&j.space_cv);

    stats->input = j.n;
    stats->accepted = vt_store_writer_count(w);
    stats->rejected = vt_store_writer_rejected(w);
    if (st == VT_OK) {
        vt_store_writer_manifest_add(w, "ingest", settings_json(o, threads));
        st = vt_store_writer_finish(w, err);
    } else {
        vt_store_writer_abort(w);
    }
    cJSON_Delete(root);
    stats->seconds = now_s() - t0;
    return st;
}
