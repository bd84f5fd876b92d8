#!/usr/bin/env python3
"""Whether two safetensors files hold the same tensors (standard library).

  same_tensors.py A B     names, dtypes, shapes and bytes equal; the header's
                          __metadata__ (step, recipe name) is not compared
Exit 1 naming the first tensor that differs."""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def main(argv):
    a, b = tensors(argv[1]), tensors(argv[2])
    if sorted(a) != sorted(b):
        print("tensor names differ: %s" % sorted(set(a) ^ set(b)))
        return 1
    for k in sorted(a):
        if a[k] != b[k]:
            print("%s differs" % k)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
