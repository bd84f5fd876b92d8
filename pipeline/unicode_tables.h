/* Types of the generated Unicode tables (build/gen/pipeline/unicode_tables.c,
 * written by pipeline/tools/gen_unicode_tables.c from the Unicode Character
 * Database). Only pipeline/unicode.c reads them. */
#ifndef VT_PIPELINE_UNICODE_TABLES_H
#define VT_PIPELINE_UNICODE_TABLES_H

typedef struct vt_ucd_range { unsigned lo, hi, value; } vt_ucd_range;
typedef struct vt_ucd_decomp { unsigned cp, first, second; } vt_ucd_decomp;
typedef struct vt_ucd_compose { unsigned first, second, composite; } vt_ucd_compose;

extern const char vt_unicode_version[];
extern const vt_ucd_range vt_ucd_class_ranges[];
extern const unsigned vt_ucd_class_count;
extern const vt_ucd_range vt_ucd_ccc_ranges[];
extern const unsigned vt_ucd_ccc_count;
extern const vt_ucd_decomp vt_ucd_decomps[];
extern const unsigned vt_ucd_decomp_count;
extern const vt_ucd_compose vt_ucd_compositions[];
extern const unsigned vt_ucd_composition_count;

#endif
