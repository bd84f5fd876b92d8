"""Writes a tiny image-dependent LLaVA set: OUT/data.json + OUT/images/*.png,
one coloured disc per 32x32 image at a random place, question "What color is
the circle?", answer its colour (7 colours: chance 1/7). Pure standard
library (zlib PNG writer), deterministic in the seed.
usage: blobs.py OUT COUNT SEED"""
import json
import os
import random
import struct
import sys
import zlib

NAMES = ["red", "green", "blue", "yellow", "purple", "orange", "black"]
COLORS = [(220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 210, 40), (150, 60, 190), (245, 140, 30),
          (30, 30, 30)]
S = 32


def png(path, rows):
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", S, S, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    out, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    items = []
    for i in range(count):
        c = rng.randrange(len(NAMES))
        r = rng.randint(3, 5)
        cx, cy = rng.randint(r + 1, S - r - 2), rng.randint(r + 1, S - r - 2)
        rows = []
        for y in range(S):
            row = []
            for x in range(S):
                row += COLORS[c] if (x - cx) ** 2 + (y - cy) ** 2 <= r * r else (235, 235, 235)
            rows.append(row)
        name = "images/%05d.png" % i
        png(os.path.join(out, name), rows)
        items.append({"id": "blob-%05d" % i, "image": name, "task": "color",
                      "conversations": [{"from": "human", "value": "<image>\nWhat color is the circle?"},
                                        {"from": "gpt", "value": NAMES[c]}]})
    with open(os.path.join(out, "data.json"), "w") as f:
        json.dump(items, f)


main()
