#!/usr/bin/env python3
"""Independent reader for TensorBoard event files, standard library only.

Checks the TFRecord framing (both masked CRC32Cs of every record, computed
here bit by bit) and decodes tensorflow.Event / Summary by hand from the
protobuf wire format, using TensorBoard's field numbers. Prints one line per
scalar: "step<TAB>tag<TAB>value", and "version<TAB>..." for file_version.
Exit 1 with a message on any framing or CRC error."""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """Yields (field number, wire type, value) of one message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def main(path):
    data = open(path, "rb").read()
    off = 0
    while off < len(data):
        if off + 12 > len(data):
            sys.exit("%s: truncated header at offset %d" % (path, off))
        head = data[off:off + 8]
        (length,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", data[off + 8:off + 12])
        if hcrc != masked(head):
            sys.exit("%s: bad length CRC at offset %d" % (path, off))
        body = data[off + 12:off + 12 + length]
        (dcrc,) = struct.unpack("<I", data[off + 12 + length:off + 16 + length])
        if len(body) != length or dcrc != masked(body):
            sys.exit("%s: bad data CRC at offset %d" % (path, off))
        off += 16 + length
        step, wall, version, values = 0, None, None, []
        for num, wt, v in fields(body):
            if num == 1 and wt == 1:
                (wall,) = struct.unpack("<d", v)
            elif num == 2 and wt == 0:
                step = v
            elif num == 3 and wt == 2:
                version = v.decode()
            elif num == 5 and wt == 2:
                for snum, swt, sv in fields(v):
                    if snum != 1:
                        continue
                    tag, val = None, 0.0  # proto3 omits a zero value
                    for vnum, vwt, vv in fields(sv):
                        if vnum == 1:
                            tag = vv.decode()
                        elif vnum == 2 and vwt == 5:
                            (val,) = struct.unpack("<f", vv)
                    values.append((tag, val))
        if wall is None or wall < 1e9:
            sys.exit("%s: event without a plausible wall_time" % path)
        if version is not None:
            print("version\t%s" % version)
        for tag, val in values:
            print("%d\t%s\t%.6g" % (step, tag, val))


if __name__ == "__main__":
    main(sys.argv[1])
