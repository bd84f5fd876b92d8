/* Answer scorers for evaluation. Each returns a per-item score in [0, 1] so
 * results can be paired across runs; yes/no benchmarks (POPE) also get an
 * aggregate F1 and the share of "yes" answers.
 * Normalisation (vt_answer_normalize) follows the VQA evaluation rules:
 * lower-case; punctuation removed, except a '.' between digits; number words
 * zero..ten as digits; articles (a, an, the) dropped; whitespace collapsed.
 * The VQA contraction table is not applied. */
#ifndef VT_EVAL_SCORE_H
#define VT_EVAL_SCORE_H

#include <stddef.h>

typedef enum vt_scorer { VT_SCORE_EXACT, VT_SCORE_VQA, VT_SCORE_OPTION, VT_SCORE_YESNO } vt_scorer;

/* "exact", "vqa", "option", "yesno" -> scorer; -1 when unknown. */
int vt_scorer_parse(const char *name);
const char *vt_scorer_name(vt_scorer s);

/* Normalised copy of s into out (at most cap bytes incl. NUL). */
void vt_answer_normalize(const char *s, char *out, size_t cap);

/* 1 when the normalised strings are equal. */
float vt_score_exact(const char *pred, const char *ref);
/* VQA soft accuracy: min(1, #refs equal to pred / 3) after normalisation;
 * with fewer than 3 references, a match with any counts fully. */
float vt_score_vqa(const char *pred, const char *const *refs, size_t nrefs);
/* The option letter a prediction names ('A'..'Z'), or 0 when it names none:
 * "B", "(B)", "B.", "B) blue", "The answer is B", "Answer: (B)". */
char vt_extract_option(const char *pred);
float vt_score_option(const char *pred, const char *ref);
/* +1 yes, 0 no, -1 neither (POPE rule: an answer without "yes" that says
 * "no" or "not" is no). */
int vt_extract_yes_no(const char *pred);
float vt_score_yes_no(const char *pred, const char *ref);
/* Dispatch by scorer. */
float vt_score(vt_scorer s, const char *pred, const char *ref);

typedef struct vt_yesno_stats {
    double precision, recall, f1, accuracy, yes_ratio; /* positive class = yes */
    /* Share of "yes" answers among the items whose reference is no: POPE's
     * hallucination rate, "yes" on an absent object (0 when there are none). */
    double yes_on_no;
} vt_yesno_stats;
/* Aggregate over n (prediction, reference) pairs; unparseable predictions
 * count as wrong and as neither yes nor no. */
vt_yesno_stats vt_yes_no_stats(const char *const *preds, const char *const *refs, size_t n);

#endif
