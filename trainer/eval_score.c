/* Answer scorers (see eval_score.h). */
#include "trainer/eval_score.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const scorer_names[] = {"exact", "vqa", "option", "yesno"};

int vt_scorer_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, scorer_names[i])) return i;
    return -1;
}

const char *vt_scorer_name(vt_scorer s) { return scorer_names[s]; }

static const char *const number_words[] = {"zero", "one", "two",   "three", "four", "five",
                                           "six",  "seven", "eight", "nine",  "ten"};

void vt_answer_normalize(const char *s, char *out, size_t cap) {
    if (cap == 0) return;
    /* Pass 1: lower-case, punctuation to spaces (a '.' between digits stays). */
    char tmp[1024];
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len && n + 1 < sizeof tmp; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && i > 0 && i + 1 < len && isdigit((unsigned char)s[i - 1]) &&
            isdigit((unsigned char)s[i + 1]))
            tmp[n++] = '.';
        else if (c == '\'' ) /* "dog's" -> "dogs": apostrophes join */
            continue;
        else if (c < 0x80 && (ispunct(c) || isspace(c)))
            tmp[n++] = ' ';
        else
            tmp[n++] = (char)tolower(c);
    }
    tmp[n] = '\0';
    /* Pass 2: words; number words as digits, articles dropped. */
    size_t o = 0;
    char *save = NULL;
    for (char *w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (!strcmp(w, "a") || !strcmp(w, "an") || !strcmp(w, "the")) continue;
        char digit[3];
        for (int k = 0; k <= 10; k++)
            if (!strcmp(w, number_words[k])) {
                snprintf(digit, sizeof digit, "%d", k);
                w = digit;
                break;
            }
        size_t wl = strlen(w);
        if (o + wl + (o ? 1 : 0) + 1 > cap) break;
        if (o) out[o++] = ' ';
        memcpy(out + o, w, wl);
        o += wl;
    }
    out[o] = '\0';
}

float vt_score_exact(const char *pred, const char *ref) {
    char a[1024], b[1024];
    vt_answer_normalize(pred, a, sizeof a);
    vt_answer_normalize(ref, b, sizeof b);
    return strcmp(a, b) == 0 ? 1.0f : 0.0f;
}

float vt_score_vqa(const char *pred, const char *const *refs, size_t nrefs) {
    char p[1024], r[1024];
    vt_answer_normalize(pred, p, sizeof p);
    size_t matches = 0;
    for (size_t i = 0; i < nrefs; i++) {
        vt_answer_normalize(refs[i], r, sizeof r);
        matches += strcmp(p, r) == 0;
    }
    if (nrefs < 3) return matches ? 1.0f : 0.0f;
    return matches >= 3 ? 1.0f : (float)matches / 3.0f;
}

/* A standalone capital letter at s[i]: not part of a longer word. */
static int standalone_letter(const char *s, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c < 'A' || c > 'Z') return 0;
    if (i > 0 && isalnum((unsigned char)s[i - 1])) return 0;
    return !isalnum((unsigned char)s[i + 1]);
}

static const char *find_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return hay;
    return NULL;
}

char vt_extract_option(const char *pred) {
    /* "answer is X" / "answer: X" wins over a letter elsewhere. */
    const char *cues[] = {"answer is", "answer:", "option"};
    for (int k = 0; k < 3; k++) {
        const char *at = find_ci(pred, cues[k]);
        if (!at) continue;
        size_t i = (size_t)(at - pred) + strlen(cues[k]);
        while (pred[i] == ' ' || pred[i] == '(') i++;
        if (standalone_letter(pred, i)) return pred[i];
    }
    /* Otherwise the first standalone capital letter that is not the word "I"
     * or "A" used as an article ("A red circle" -> no option). */
    size_t len = strlen(pred);
    for (size_t i = 0; i < len; i++) {
        if (!standalone_letter(pred, i)) continue;
        char c = pred[i], next = pred[i + 1];
        if (c == 'I' && next == ' ') continue;
        if (c == 'A' && next == ' ' && isalpha((unsigned char)pred[i + 2])) continue;
        return c;
    }
    return 0;
}

float vt_score_option(const char *pred, const char *ref) {
    char want = vt_extract_option(ref);
    return want && vt_extract_option(pred) == want ? 1.0f : 0.0f;
}

int vt_extract_yes_no(const char *pred) {
    char n[1024];
    vt_answer_normalize(pred, n, sizeof n);
    int yes = 0, no = 0;
    char *save = NULL;
    for (char *w = strtok_r(n, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (!strcmp(w, "yes")) yes = 1;
        if (!strcmp(w, "no") || !strcmp(w, "not")) no = 1;
    }
    if (yes) return 1;
    return no ? 0 : -1;
}

float vt_score_yes_no(const char *pred, const char *ref) {
    int p = vt_extract_yes_no(pred), r = vt_extract_yes_no(ref);
    return p >= 0 && p == r ? 1.0f : 0.0f;
}

float vt_score(vt_scorer s, const char *pred, const char *ref) {
    switch (s) {
    case VT_SCORE_EXACT: return vt_score_exact(pred, ref);
    case VT_SCORE_VQA: return vt_score_vqa(pred, &ref, 1);
    case VT_SCORE_OPTION: return vt_score_option(pred, ref);
    case VT_SCORE_YESNO: return vt_score_yes_no(pred, ref);
    }
    return 0.0f;
}

vt_yesno_stats vt_yes_no_stats(const char *const *preds, const char *const *refs, size_t n) {
    size_t tp = 0, fp = 0, fn = 0, correct = 0, said_yes = 0, ref_no = 0, yes_on_no = 0;
    for (size_t i = 0; i < n; i++) {
        int p = vt_extract_yes_no(preds[i]), r = vt_extract_yes_no(refs[i]);
        said_yes += p == 1;
        correct += p >= 0 && p == r;
        tp += p == 1 && r == 1;
        fp += p == 1 && r != 1;
        fn += p != 1 && r == 1;
        ref_no += r == 0;
        yes_on_no += p == 1 && r == 0;
    }
    vt_yesno_stats st = {0};
    st.precision = tp + fp ? (double)tp / (double)(tp + fp) : 0.0;
    st.recall = tp + fn ? (double)tp / (double)(tp + fn) : 0.0;
    st.f1 = st.precision + st.recall > 0 ? 2 * st.precision * st.recall / (st.precision + st.recall) : 0.0;
    st.accuracy = n ? (double)correct / (double)n : 0.0;
    st.yes_ratio = n ? (double)said_yes / (double)n : 0.0;
    st.yes_on_no = ref_no ? (double)yes_on_no / (double)ref_no : 0.0;
    return st;
}
