/* SHA-256 (FIPS 180-4) for content hashes in manifests and checkpoints. */
#ifndef VT_SHA256_H
#define VT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct vt_sha256 {
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
} vt_sha256;

void vt_sha256_init(vt_sha256 *s);
void vt_sha256_update(vt_sha256 *s, const void *data, size_t len);
void vt_sha256_final(vt_sha256 *s, unsigned char digest[32]);
/* One-shot: lowercase hex into hex[65]. */
void vt_sha256_hex(const void *data, size_t len, char hex[65]);
void vt_hex_encode(const unsigned char *bytes, size_t n, char *out);

#endif
