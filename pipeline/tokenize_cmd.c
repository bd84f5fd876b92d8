/* `vistune tokenize`: runs a tokenizer over JSON-lines text from the command
 * line, for inspection and for the verification tests against the reference
 * tokenizers (one JSON array of ids per input line, the same text that
 * JavaScript's JSON.stringify prints). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune tokenize --tokenizer SPEC [options]\n"
            "  --tokenizer SPEC   builtin:bytes, a tokenizer.json, or a directory with\n"
            "                     tokenizer.json or encoder.json + vocab.bpe\n"
            "  --input FILE       JSON lines, one JSON string each (default: stdin)\n"
            "  --text STRING      tokenize one string instead of --input\n"
            "  --special          match special tokens (<|im_start|>, ...) in the text\n"
            "  --roundtrip        also check decode(encode(s)) == normalize(s) (s itself unless the\n"
            "                     tokenizer normalises, e.g. NFC); exit 1 on a mismatch\n"
            "output: one JSON array of ids per input line\n");
}

static int run_one(vt_tokenizer *tok, const char *s, size_t len, unsigned flags, bool roundtrip, long line,
                   long *bad_roundtrip) {
    vt_tokens ids = {0};
    vt_error err = {0};
    if (vt_tokenizer_encode(tok, s, len, flags, &ids, &err)) {
        fprintf(stderr, "vistune tokenize: line %ld: %s\n", line, err.msg);
        return 1;
    }
    putchar('[');
    for (size_t i = 0; i < ids.n; i++) printf(i ? ",%d" : "%d", ids.ids[i]);
    puts("]");
    if (roundtrip) {
        char *back;
        size_t blen;
        if (vt_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &blen, &err)) {
            fprintf(stderr, "vistune tokenize: line %ld: decode: %s\n", line, err.msg);
            vt_tokens_free(&ids);
            return 1;
        }
        char *want;
        size_t wlen;
        if (vt_tokenizer_normalize(tok, s, len, &want, &wlen, &err)) {
            fprintf(stderr, "vistune tokenize: line %ld: %s\n", line, err.msg);
            free(back);
            vt_tokens_free(&ids);
            return 1;
        }
        if (blen != wlen || memcmp(back, want, wlen) != 0) {
            if (*bad_roundtrip < 5) fprintf(stderr, "vistune tokenize: line %ld: decode(encode(s)) != s\n", line);
            (*bad_roundtrip)++;
        }
        free(back);
        free(want);
    }
    vt_tokens_free(&ids);
    return 0;
}

int vt_cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"input", required_argument, 0, 'i'},
        {"text", required_argument, 0, 'x'},      {"special", no_argument, 0, 's'},
        {"roundtrip", no_argument, 0, 'r'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *spec = NULL, *input = NULL, *text = NULL;
    unsigned flags = 0;
    bool roundtrip = false;
    int c;
    optind = 1;
    opterr = 0; /* one error line of our own instead of getopt's */
    while ((c = getopt_long(argc, argv, "t:i:x:srh", opts, NULL)) != -1) {
        switch (c) {
        case 't': spec = optarg; break;
        case 'i': input = optarg; break;
        case 'x': text = optarg; break;
        case 's': flags |= VT_TOK_ALLOW_SPECIAL; break;
        case 'r': roundtrip = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune tokenize: bad option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!spec || optind < argc) {
        fprintf(stderr, "vistune tokenize: %s (see --help)\n", spec ? "unexpected argument" : "--tokenizer is required");
        return 2;
    }
    vt_error err = {0};
    vt_tokenizer *tok = NULL;
    if (vt_tokenizer_open(spec, &tok, &err)) {
        fprintf(stderr, "vistune tokenize: %s\n", err.msg);
        return 1;
    }
    long bad_roundtrip = 0;
    int rc = 0;
    if (text) {
        rc = run_one(tok, text, strlen(text), flags, roundtrip, 1, &bad_roundtrip);
    } else {
        FILE *in = input ? fopen(input, "r") : stdin;
        if (!in) {
            fprintf(stderr, "vistune tokenize: %s: cannot open\n", input);
            vt_tokenizer_free(tok);
            return 1;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long no = 0;
        while (rc == 0 && (n = getline(&line, &cap, in)) > 0) {
            no++;
            cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
            if (!cJSON_IsString(j)) {
                fprintf(stderr, "vistune tokenize: %s:%ld: not a JSON string\n", input ? input : "stdin", no);
                rc = 1;
            } else {
                rc = run_one(tok, j->valuestring, strlen(j->valuestring), flags, roundtrip, no, &bad_roundtrip);
            }
            cJSON_Delete(j);
        }
        free(line);
        if (input) fclose(in);
    }
    if (roundtrip && bad_roundtrip) {
        fprintf(stderr, "vistune tokenize: %ld round-trip mismatches\n", bad_roundtrip);
        rc = 1;
    }
    vt_tokenizer_free(tok);
    return rc;
}
