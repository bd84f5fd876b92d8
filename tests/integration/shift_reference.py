"""Independent re-implementations of deterministic shifts from the ImageNet-C
formulas (research/shifts.md 1.2) with numpy/scipy/PIL, compared against the
PNGs `vistune shift` wrote. Usage: shift_reference.py DIR (DIR holds clean.png
and NAME-S.png). Prints one line per check; exits 1 on any mismatch."""
import colorsys
import io
import sys

import numpy as np
import scipy.ndimage as ndi
from PIL import Image

d = sys.argv[1]
clean8 = np.asarray(Image.open(f"{d}/clean.png").convert("RGB"))
x = clean8.astype(np.float64) / 255.0
H, W = x.shape[:2]
bad = 0


def to8(v):
    return np.round(np.clip(v, 0, 1) * 255.0)


def check(name, s, ref8, tol):
    global bad
    got = np.asarray(Image.open(f"{d}/{name}-{s}.png").convert("RGB")).astype(np.float64)
    diff = np.abs(got - ref8)
    ok = diff.max() <= tol
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} s{s}: max |diff| {diff.max():.0f} (tol {tol}), "
          f"mean {diff.mean():.3f}")


def hsv_map(f):
    flat = x.reshape(-1, 3)
    out = np.empty_like(flat)
    for i, (r, g, b) in enumerate(flat):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        h, s, v = f(h, s, v)
        out[i] = colorsys.hsv_to_rgb(h, s, v)
    return out.reshape(x.shape)


def pil_resize(a, size, flt):
    # float ('F') mode per channel: PIL's resampling without 8-bit rounding between passes
    return np.stack([np.asarray(Image.fromarray(a[..., c].astype(np.float32), mode="F").resize(size, flt))
                     for c in range(3)], axis=-1).astype(np.float64)


for s in range(1, 6):
    c = [.4, .3, .2, .1, .05][s - 1]
    m = x.mean(axis=(0, 1), keepdims=True)
    check("contrast", s, to8((x - m) * c + m), 1)

    dv = [.1, .2, .3, .4, .5][s - 1]
    check("brightness", s, to8(hsv_map(lambda h, sa, v: (h, sa, min(max(v + dv, 0), 1)))), 1)

    mul, add = [(.3, 0), (.1, 0), (2, 0), (5, .1), (20, .2)][s - 1]
    check("saturate", s, to8(hsv_map(lambda h, sa, v: (h, min(max(sa * mul + add, 0), 1), v))), 1)

    f = [.6, .5, .4, .3, .25][s - 1]
    small = pil_resize(x, (int(W * f), int(H * f)), Image.BOX)
    check("pixelate", s, to8(pil_resize(small, (W, H), Image.BOX)), 1)

    f = [.5, .35, .25, .18, .125][s - 1]
    small = pil_resize(x, (max(1, int(W * f)), max(1, int(H * f))), Image.BOX)
    check("low_res", s, to8(pil_resize(small, (W, H), Image.BICUBIC)), 1)

    q = [25, 18, 15, 10, 7][s - 1]
    buf = io.BytesIO()
    Image.fromarray(clean8).save(buf, "JPEG", quality=q)
    check("jpeg_compression", s, np.asarray(Image.open(buf).convert("RGB")).astype(np.float64), 1)

    sg = [1, 2, 3, 4, 6][s - 1]
    check("gaussian_blur", s, to8(ndi.gaussian_filter(x, sigma=(sg, sg, 0), mode="nearest", truncate=4.0)), 1)

    # ImageNet-C disk(): binary disk on >= [-8, 8], cv2.GaussianBlur((k,k), alias) on it, cv2.filter2D
    r, alias = [(3, .1), (4, .5), (6, .5), (8, .5), (10, .5)][s - 1]
    L = np.arange(-8, 9) if r <= 8 else np.arange(-r, r + 1)
    k = 3 if r <= 8 else 5
    X, Y = np.meshgrid(L, L)
    disk = (X ** 2 + Y ** 2 <= r ** 2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * alias ** 2))
    g /= g.sum()
    disk = ndi.correlate(disk, np.outer(g, g), mode="mirror")  # cv2 BORDER_REFLECT_101
    ref = np.stack([ndi.correlate(x[..., ch], disk, mode="mirror") for ch in range(3)], axis=-1)
    check("defocus_blur", s, to8(ref), 1)

sys.exit(1 if bad else 0)
