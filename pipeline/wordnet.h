/* Read-only access to Princeton WordNet 3.0 in its database file format
 * (index.POS / data.POS, Debian's wordnet-base in /usr/share/wordnet), enough
 * for synonym lookups: lemma -> synsets -> the other words of each synset.
 * The files are loaded into memory once (about 28 MB); lookups are binary
 * searches over the sorted index lines and direct byte-offset reads of the
 * data files, as the format intends. */
#ifndef VT_PIPELINE_WORDNET_H
#define VT_PIPELINE_WORDNET_H

#include <stddef.h>

#include "common/error.h"

typedef struct vt_wordnet vt_wordnet;

/* Opens the four index/data pairs under dir. Errors name the file: missing
 * (VT_ERR_IO, with a hint to install wordnet-base) or malformed (VT_ERR_FORMAT
 * with the line number). */
vt_status vt_wordnet_open(const char *dir, vt_wordnet **out, vt_error *err);
void vt_wordnet_close(vt_wordnet *wn);

/* Synonyms of word over all parts of speech, in WordNet order (sense order,
 * then synset order), deduplicated, excluding the word itself. Lookup is
 * case-insensitive and tries simple morphological base forms ("images" ->
 * "image") when the word itself is not a lemma. Multi-word lemmas come back
 * with spaces; lemmas with capitals or digits (proper nouns, codes) are
 * skipped. *list is NULL-terminated, malloc'd; free it with
 * vt_wordnet_list_free. A word with no synonyms gives *n = 0. */
vt_status vt_wordnet_synonyms(const vt_wordnet *wn, const char *word, char ***list, size_t *n, vt_error *err);
void vt_wordnet_list_free(char **list);

/* Number of index lines loaded (all parts of speech), for tests and logs. */
size_t vt_wordnet_lemma_count(const vt_wordnet *wn);

#endif
