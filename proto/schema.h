/* Schema version of the records in the proto schemas, written into every Sample,
 * manifest, result and checkpoint so readers can refuse what they do not know. */
#ifndef VT_PROTO_SCHEMA_H
#define VT_PROTO_SCHEMA_H
#define VT_SCHEMA_VERSION 1u
#endif
