/* `vistune ingest`: option parsing and the one-line summary around
 * vt_ingest_run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/ingest.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune ingest --json FILE --images DIR --out DB [options]\n"
            "Turn LLaVA JSON + JPEG/PNG/WebP images into a sample store (LMDB of vt.Sample\n"
            "records with WebP images, manifest.json, rejects.jsonl). DB appears only when complete.\n"
            "  --json FILE          LLaVA JSON: [{id, image, conversations:[{from, value}], ...}]\n"
            "  --images DIR         image paths in the JSON are relative to DIR\n"
            "  --out DB             store directory to create (must not exist unless --force)\n"
            "  --size PX            output side in pixels (default 336; 0 keeps the source size)\n"
            "  --resize pad|crop    pad to square with the CLIP mean (LLaVA, default) or centre-crop\n"
            "  --quality Q          WebP lossy quality 0..100 (default 90)\n"
            "  --lossless           WebP lossless (exact pixels)\n"
            "  --threads T          decode/encode threads (default: online CPUs)\n"
            "  --val-fraction F     share of entries without \"split\" that go to val (default 0)\n"
            "  --seed S             seed of the split hash (default 0)\n"
            "  --max-pixels N       refuse images whose header claims more pixels (default 67108864)\n"
            "  --map-size BYTES     initial LMDB map size (default 64 MiB; doubles when full)\n"
            "  --max-map-size BYTES cap for map growth (default 1 TiB)\n"
            "  --commit-every N     records per LMDB transaction (default 1000)\n"
            "  --source NAME        provenance source (default llava-json)\n"
            "  --license TEXT       provenance license\n"
            "  --strict             fail on the first bad entry instead of rejecting it\n"
            "  --force              replace DB if it exists\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return -1;
    *out = v;
    return 0;
}

#define BAD(...)                                          \
    do {                                                  \
        fprintf(stderr, "vistune ingest: " __VA_ARGS__);  \
        fputc('\n', stderr);                              \
        return 2;                                         \
    } while (0)

int vt_cmd_ingest(int argc, char **argv) {
    enum { O_JSON = 1, O_IMAGES, O_OUT, O_SIZE, O_RESIZE, O_QUALITY, O_LOSSLESS, O_THREADS, O_VAL,
           O_SEED, O_MAXPX, O_MAP, O_MAXMAP, O_COMMIT, O_SOURCE, O_LICENSE, O_STRICT, O_FORCE, O_HELP };
    static const struct option longopts[] = {
        {"json", required_argument, 0, O_JSON},         {"images", required_argument, 0, O_IMAGES},
        {"out", required_argument, 0, O_OUT},           {"size", required_argument, 0, O_SIZE},
        {"resize", required_argument, 0, O_RESIZE},     {"quality", required_argument, 0, O_QUALITY},
        {"lossless", no_argument, 0, O_LOSSLESS},       {"threads", required_argument, 0, O_THREADS},
        {"val-fraction", required_argument, 0, O_VAL},  {"seed", required_argument, 0, O_SEED},
        {"max-pixels", required_argument, 0, O_MAXPX},  {"map-size", required_argument, 0, O_MAP},
        {"max-map-size", required_argument, 0, O_MAXMAP}, {"commit-every", required_argument, 0, O_COMMIT},
        {"source", required_argument, 0, O_SOURCE},     {"license", required_argument, 0, O_LICENSE},
        {"strict", no_argument, 0, O_STRICT},           {"force", no_argument, 0, O_FORCE},
        {"help", no_argument, 0, O_HELP},               {0, 0, 0, 0}};
    vt_ingest_opts o = vt_ingest_opts_default();
    int have_quality = 0;
    uint64_t v;
    opterr = 0;
    optind = 1;
    int c;
    vt_error err = {0};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_JSON: o.json_path = optarg; break;
        case O_IMAGES: o.images_dir = optarg; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_SIZE:
            if (parse_u64(optarg, &v) || v > 16383) BAD("--size '%s' must be an integer in 0..16383", optarg);
            o.size = (int)v;
            break;
        case O_RESIZE:
            if (vt_fit_mode_parse(optarg, &o.fit, &err) != VT_OK) BAD("--resize: %s", err.msg);
            break;
        case O_QUALITY:
            if (parse_u64(optarg, &v) || v > 100) BAD("--quality '%s' must be an integer in 0..100", optarg);
            o.quality = (int)v;
            have_quality = 1;
            break;
        case O_LOSSLESS: o.lossless = true; break;
        case O_THREADS:
            if (parse_u64(optarg, &v) || v < 1 || v > 256) BAD("--threads '%s' must be an integer in 1..256", optarg);
            o.threads = (int)v;
            break;
        case O_VAL: {
            char *end;
            o.val_fraction = strtod(optarg, &end);
            if (!*optarg || *end || !(o.val_fraction >= 0 && o.val_fraction <= 1))
                BAD("--val-fraction '%s' must be a number in 0..1", optarg);
            break;
        }
        case O_SEED:
            if (parse_u64(optarg, &o.seed)) BAD("--seed '%s' must be a non-negative integer", optarg);
            break;
        case O_MAXPX:
            if (parse_u64(optarg, &o.max_pixels) || !o.max_pixels) BAD("--max-pixels '%s' must be a positive integer", optarg);
            break;
        case O_MAP:
            if (parse_u64(optarg, &o.map_size) || o.map_size < 65536) BAD("--map-size '%s' must be an integer >= 65536", optarg);
            break;
        case O_MAXMAP:
            if (parse_u64(optarg, &o.max_map_size) || o.max_map_size < 65536) BAD("--max-map-size '%s' must be an integer >= 65536", optarg);
            break;
        case O_COMMIT:
            if (parse_u64(optarg, &v) || v < 1 || v > 10000000) BAD("--commit-every '%s' must be an integer in 1..10000000", optarg);
            o.commit_every = (uint32_t)v;
            break;
        case O_SOURCE: o.source = optarg; break;
        case O_LICENSE: o.license = optarg; break;
        case O_STRICT: o.strict = true; break;
        case O_FORCE: o.force = true; break;
        case O_HELP: usage(stdout); return 0;
        default: BAD("bad option '%s' (see vistune ingest --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) BAD("unexpected argument '%s' (see vistune ingest --help)", argv[optind]);
    if (!o.json_path || !o.images_dir || !o.out_dir)
        BAD("--json, --images and --out are required (see vistune ingest --help)");
    if (o.lossless && have_quality) BAD("--quality and --lossless are exclusive");
    if (o.lossless) o.quality = 75; /* lossless: compression effort */
    if (o.map_size && o.max_map_size && o.map_size > o.max_map_size)
        BAD("--map-size is larger than --max-map-size");
    vt_ingest_stats stats;
    if (vt_ingest_run(&o, &stats, &err) != VT_OK) {
        fprintf(stderr, "vistune ingest: %s\n", err.msg);
        return 1;
    }
    printf("ingest: %llu input, %llu accepted, %llu rejected%s; %.1f MB of WebP in %.2f s (%.0f images/s) -> %s\n",
           (unsigned long long)stats.input, (unsigned long long)stats.accepted,
           (unsigned long long)stats.rejected, stats.rejected ? " (see rejects.jsonl)" : "",
           stats.image_bytes / 1e6, stats.seconds,
           stats.seconds > 0 ? (double)stats.input / stats.seconds : 0.0, o.out_dir);
    return 0;
}
