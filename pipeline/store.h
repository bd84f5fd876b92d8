/* The sample store: a directory holding an LMDB environment (data.mdb,
 * lock.mdb) of vt.Sample records, manifest.json and rejects.jsonl.
 *
 * Keys are the 12-digit zero-padded sample index ("000000000042"), dense
 * 0..count-1, so LMDB's byte order is index order and appends are cheap.
 * Values are packed vt.Sample protos whose `index` equals the key.
 *
 * Writing is all-or-nothing: the writer builds everything in a temporary
 * sibling directory ("<dir>.tmp.XXXXXX"), and vt_store_writer_finish fsyncs
 * it and renames it to <dir>; any failure or vt_store_writer_abort removes the
 * temporary directory. A reader therefore sees a complete store or none.
 *
 * Reading is zero-copy: vt_store_get_raw returns a pointer into LMDB's map,
 * valid until the read transaction ends or is reset. One read transaction
 * per thread at a time (the environment is opened MDB_NOTLS, so transactions
 * are not tied to threads, but each is used by one thread at a time).
 *
 * manifest.json fields:
 *   format "vistune-store", schema_version, vistune_version, source,
 *   count (records), input_count, rejected (input_count = count + rejected),
 *   splits {train, val, test: n}, tasks {name: n}, groups {id: n},
 *   record_bytes (sum of value sizes), image_bytes (sum of WebP sizes),
 *   content_sha256 (SHA-256 over every record in key order of
 *   key || u64le(len) || value), map_size, and any fields the producer adds
 *   (e.g. "ingest": {size, resize, quality, ...}).
 * rejects.jsonl: one JSON object per skipped input:
 *   {"input_index": i, "id": "...", "reason": "<code>", "detail": "<message>"}. */
#ifndef VT_PIPELINE_STORE_H
#define VT_PIPELINE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include "common/error.h"
#include "proto/sample.pb-c.h"

enum { VT_STORE_KEY_LEN = 12 };

/* Writes the 12-digit key of index into key[13] (NUL-terminated). Indexes
 * are below 10^12. */
void vt_store_key(uint64_t index, char key[VT_STORE_KEY_LEN + 1]);

/* --- writer --- */

typedef struct vt_store_writer vt_store_writer;

typedef struct vt_store_writer_opts {
    uint64_t map_size;     /* initial LMDB map size; 0 = 64 MiB */
    uint64_t max_map_size; /* growth stops here (VT_ERR_RANGE "map full"); 0 = 1 TiB */
    uint32_t commit_every; /* records per write transaction; 0 = 1000 */
    bool overwrite;        /* replace an existing store at dir (else VT_ERR_STATE) */
    const char *source;    /* manifest "source" (copied); NULL = "unknown" */
} vt_store_writer_opts;

/* Prepares a new store at dir: checks that dir does not exist (unless
 * overwrite) and that its parent is a writable directory, then creates the
 * temporary sibling and the LMDB environment inside it. */
vt_status vt_store_writer_open(const char *dir, const vt_store_writer_opts *opts,
                               vt_store_writer **out, vt_error *err);

/* Appends a record. The writer sets s->schema_version and s->index (the next
 * dense index, returned in *index if not NULL); everything else is the
 * caller's. Records are committed every commit_every puts; when LMDB reports
 * MDB_MAP_FULL the map is doubled (up to max_map_size) and the pending
 * transaction replayed. */
vt_status vt_store_writer_put(vt_store_writer *w, Vt__Sample *s, uint64_t *index, vt_error *err);

/* Records a skipped input in rejects.jsonl. reason is a short code
 * ("missing_image", "corrupt_image", ...), detail the full message. */
vt_status vt_store_writer_reject(vt_store_writer *w, uint64_t input_index, const char *id,
                                 const char *reason, const char *detail, vt_error *err);

/* Adds a producer field to the manifest (takes ownership of value). */
void vt_store_writer_manifest_add(vt_store_writer *w, const char *key, cJSON *value);

/* Records accepted and rejected so far. */
uint64_t vt_store_writer_count(const vt_store_writer *w);
uint64_t vt_store_writer_rejected(const vt_store_writer *w);

/* Commits, writes manifest.json, fsyncs, renames the temporary directory to
 * dir and fsyncs the parent. Frees w whatever the outcome; on failure the
 * temporary directory is removed and dir is untouched. */
vt_status vt_store_writer_finish(vt_store_writer *w, vt_error *err);

/* Discards everything written (removes the temporary directory) and frees w. */
void vt_store_writer_abort(vt_store_writer *w);

/* --- reader --- */

typedef struct vt_store vt_store;
typedef struct vt_store_txn vt_store_txn;

/* Opens a store read-only (MDB_RDONLY | MDB_NOTLS; MDB_NOLOCK as a fallback
 * when the lock file cannot be opened, e.g. a read-only file system), clears
 * stale reader slots left by killed processes (mdb_reader_check), reads
 * manifest.json and checks format, schema version and record count. */
vt_status vt_store_open(const char *dir, vt_store **out, vt_error *err);
void vt_store_close(vt_store *s);

uint64_t vt_store_count(const vt_store *s);
const char *vt_store_path(const vt_store *s);
/* The parsed manifest (owned by s). */
const cJSON *vt_store_manifest(const vt_store *s);
/* Stale reader slots cleared at open. */
int vt_store_stale_readers_cleared(const vt_store *s);

/* A read transaction. Reset + renew is cheaper than end + begin for a
 * loader that reads batch after batch. */
vt_status vt_store_txn_begin(vt_store *s, vt_store_txn **out, vt_error *err);
void vt_store_txn_reset(vt_store_txn *t);
vt_status vt_store_txn_renew(vt_store_txn *t, vt_error *err);
void vt_store_txn_end(vt_store_txn *t);

/* The packed record of index, pointing into the map (read-only, valid until
 * the transaction is reset or ended). VT_ERR_RANGE for index >= count,
 * VT_ERR_FORMAT when the key is missing; messages name the key. */
vt_status vt_store_get_raw(vt_store_txn *t, uint64_t index, const uint8_t **data, size_t *len,
                           vt_error *err);

/* Unpacks a record (alloc may be NULL for malloc) and checks that its index
 * and schema version match. Free with vt__sample__free_unpacked(*out, alloc). */
vt_status vt_store_get_sample(vt_store_txn *t, uint64_t index, ProtobufCAllocator *alloc,
                              Vt__Sample **out, vt_error *err);

/* Finds the image inside a packed Sample without unpacking (protobuf-c would
 * copy the WebP bytes): *webp points into data. Sizes are the stored ones. */
typedef struct vt_sample_image_ref {
    const uint8_t *webp;
    size_t webp_len;
    uint32_t width, height;
} vt_sample_image_ref;
vt_status vt_sample_peek_image(const uint8_t *data, size_t len, vt_sample_image_ref *out,
                               vt_error *err);

#endif
