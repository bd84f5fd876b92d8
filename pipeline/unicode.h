/* Unicode support for the tokenizers: UTF-8 coding, the letter / number /
 * whitespace classes that BPE pre-tokenisation patterns use, and NFC
 * normalisation. Tables come from the Unicode Character Database at build
 * time (see pipeline/tools/gen_unicode_tables.c); vt_unicode_version names it. */
#ifndef VT_PIPELINE_UNICODE_H
#define VT_PIPELINE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

enum {
    VT_UC_LETTER = 1,   /* General_Category L* (Lu Ll Lt Lm Lo) = regex \p{L} */
    VT_UC_NUMBER = 2,   /* General_Category N* (Nd Nl No)       = regex \p{N} */
    VT_UC_ASSIGNED = 4, /* any category but Cn */
};

/* Version of the Unicode Character Database the tables were built from ("15.0.0"). */
const char *vt_unicode_db_version(void);

/* Decodes one scalar value at s (n bytes available). Returns its length
 * (1..4), or 0 when the bytes are not well-formed UTF-8 (overlong forms,
 * surrogates and values above U+10FFFF are rejected). */
int vt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp (a scalar value) as UTF-8 into out; returns 1..4. */
int vt_utf8_encode(uint32_t cp, char out[4]);
/* True when s[0..n) is well-formed UTF-8; else *bad_offset = first bad byte. */
bool vt_utf8_valid(const char *s, size_t n, size_t *bad_offset);

/* VT_UC_* flags of a code point. */
unsigned vt_unicode_class(uint32_t cp);
/* Whitespace as ECMAScript's \s defines it (WhiteSpace + LineTerminator):
 * the definition the reference tokenizers (GPT-2's Encoder.js and the
 * transformers.js port of HF tokenizers) use. Unlike Unicode White_Space it
 * includes U+FEFF and excludes U+0085. */
bool vt_unicode_is_space(uint32_t cp);
/* Canonical combining class (0 for starters). */
unsigned vt_unicode_ccc(uint32_t cp);

/* NFC of well-formed UTF-8 s[0..n): *out (malloc'd, NUL-terminated) and
 * *out_len. Input that is already NFC comes back unchanged byte for byte.
 * VT_ERR_FORMAT on invalid UTF-8 (message names the byte offset). */
vt_status vt_unicode_nfc(const char *s, size_t n, char **out, size_t *out_len, vt_error *err);

#endif
