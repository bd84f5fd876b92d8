/* Reads statistics queries on stdin and prints vistune's answers, one line
 * each, for check_stats.py to compare with scipy:
 *   wilson K N        -> "lo hi"
 *   mcnemar B C       -> "p"
 *   bh P1 P2 ...      -> "q1 q2 ..." */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/report_stats.h"

int main(void) {
    char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        if (!tok) continue;
        if (!strcmp(tok, "wilson")) {
            unsigned long long k = strtoull(strtok_r(NULL, " \n", &save), NULL, 10);
            unsigned long long n = strtoull(strtok_r(NULL, " \n", &save), NULL, 10);
            vt_interval ci = vt_wilson_interval(k, n, 1.959963984540054);
            printf("%.17g %.17g\n", ci.lo, ci.hi);
        } else if (!strcmp(tok, "mcnemar")) {
            unsigned long long b = strtoull(strtok_r(NULL, " \n", &save), NULL, 10);
            unsigned long long c = strtoull(strtok_r(NULL, " \n", &save), NULL, 10);
            printf("%.17g\n", vt_mcnemar_exact_p(b, c));
        } else if (!strcmp(tok, "bh")) {
            double p[4096], q[4096];
            size_t n = 0;
            while (n < 4096 && (tok = strtok_r(NULL, " \n", &save))) p[n++] = strtod(tok, NULL);
            vt_benjamini_hochberg(p, n, q);
            for (size_t i = 0; i < n; i++) printf("%.17g%c", q[i], i + 1 < n ? ' ' : '\n');
        } else {
            fprintf(stderr, "stats_dump: unknown query '%s'\n", tok);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
