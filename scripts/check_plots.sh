#!/usr/bin/env bash
# Does the page of `dvc plots show` show real curves with no network? Renders it in headless
# Chromium with networking off and checks the screenshot for the curves' pixels.
#
#   scripts/check_plots.sh                 # runs `dvc plots show` here, checks dvc_plots/index.html
#   scripts/check_plots.sh PAGE.html       # checks an existing page (e.g. from `dvc plots diff`)
#
# Needs Chromium (Debian: apt-get install chromium; or set CHROMIUM=/path/to/chrome). Networking is
# off twice over: Chromium runs in a fresh network namespace (`unshare -rn`, where the kernel allows
# it) and resolves no host name (--host-resolver-rules). A page that fetches its JavaScript from a
# CDN (DVC's Vega-Lite plots) renders blank here, as it would offline. The screenshot is written
# beside the page (SCREENSHOT=... to change); exit status 0 = curves seen, 1 = blank, 2 = cannot check.
# tests/training/test_training_plots.py runs this script (skipped, saying why, where Chromium is absent).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # ganpipe.plots.CURVE_COLOR below

page=${1:-}
if [[ -z "$page" ]]; then
    cd "$root"
    dvc plots show >/dev/null
    page=dvc_plots/index.html
fi
[[ -f "$page" ]] || { echo "check_plots: no page at $page" >&2; exit 2; }
page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
shot=${SCREENSHOT:-$(dirname "$page")/screenshot.png}

browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[[ -n "$browser" ]] || { echo "check_plots: Chromium not found (apt-get install chromium, or set CHROMIUM)" >&2; exit 2; }

# one plot box per image: make the window tall enough to hold them all
n_images=$( { grep -o '<img ' "$page" || true; } | wc -l)
height=$((400 * (n_images > 0 ? n_images : 1) + 200))

isolate=()
if unshare -rn true 2>/dev/null; then
    isolate=(unshare -rn)
    network="a fresh network namespace + no host resolution"
else
    network="no host resolution (unshare -rn is not allowed here)"
fi
rm -f "$shot"
# (--no-sandbox: Chromium's sandbox refuses to run as root, as in containers and CI)
"${isolate[@]}" "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-extensions \
    --no-first-run --host-resolver-rules="MAP * ~NOTFOUND" --window-size="1280,$height" \
    --virtual-time-budget=5000 --screenshot="$shot" "file://$page" >/dev/null 2>&1 || true
[[ -s "$shot" ]] || { echo "check_plots: Chromium wrote no screenshot of $page" >&2; exit 2; }

# the curves are drawn in ganpipe.plots.CURVE_COLOR; a blank page (or broken images) has none
python - "$shot" "$n_images" "$network" <<'EOF'
import sys

import numpy as np
from PIL import Image

from ganpipe.plots import CURVE_COLOR

shot, n_images, network = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
target = np.array([int(CURVE_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
curve_pixels = int((np.abs(rgb - target).sum(axis=-1) < 60).sum())
needed = 200 * max(n_images, 1)  # a curve of a 512x240 plot has ~1000 such pixels
print(f"check_plots: {shot}: {n_images} image plot(s), {curve_pixels} curve pixels "
      f"(need {needed}), rendered with {network}")
if n_images == 0 or curve_pixels < needed:
    print("check_plots: FAIL: the page shows no curves without network", file=sys.stderr)
    sys.exit(1)
EOF
