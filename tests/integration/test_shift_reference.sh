#!/usr/bin/env bash
# Deterministic shifts against independent numpy/scipy/PIL re-implementations
# of the ImageNet-C formulas (tests/integration/shift_reference.py), through
# the real command line and PNG files. Skips (77) without Debian's python3
# stack (numpy, scipy, PIL).
. "$(dirname "$0")/lib.sh"
py=${VT_TORCH_PYTHON:-/usr/bin/python3}
"$py" -c "import numpy, scipy.ndimage, PIL" 2>/dev/null || { echo "no numpy/scipy/PIL in $py: skip"; exit 77; }
d=$VT_TEST_TMP/reference
rm -rf "$d" && mkdir -p "$d"
# a smooth, non-square clean image with texture (48x40)
"$py" - "$d/clean.png" <<'PY'
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(5)
h, w = 40, 48
yy, xx = np.mgrid[0:h, 0:w]
base = np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 5.0 + yy / 7.0)], axis=-1)
noise = np.kron(rng.random((h // 4, w // 4, 3)), np.ones((4, 4, 1)))
img = np.clip(0.7 * base + 0.3 * noise, 0, 1)
Image.fromarray(np.round(img * 255).astype(np.uint8)).save(sys.argv[1])
PY
for name in contrast brightness saturate pixelate low_res jpeg_compression gaussian_blur defocus_blur; do
  for s in 1 2 3 4 5; do
    "$VISTUNE" shift "$name" --severity "$s" --in "$d/clean.png" --out "$d/$name-$s.png"
  done
done
"$py" "$(dirname "$0")/shift_reference.py" "$d"
