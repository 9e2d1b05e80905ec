#!/usr/bin/env bash
# Decode + RandomResizedCrop throughput per core: clipgrid (bench_decode) next to PIL +
# torchvision (decode_torch.py), the same JPEGs, one thread each, one after the other in one run.
# usage: bash bench/decode_compare.sh [BUILD_DIR] [PYTHON] [PASSES]
# The JPEG set (200 photos of ~500x375, quality 90, bench/decode_images.py) is made once into
# BUILD_DIR/decode_jpegs from scikit-image's nine colour sample photos, taken out of the Debian
# package python3-skimage (apt-get download + dpkg-deb -x: nothing is installed). PYTHON needs
# Pillow, torch and torchvision. Writes bench/results/decode_<date>.json.
set -euo pipefail
build="${1:-build}"; py="${2:-/work/venv/bin/python}"; passes="${3:-5}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
set_dir="$build/decode_jpegs"
if [ ! -f "$set_dir/img_0199.jpg" ]; then
  (cd "$tmp" && { apt-get download python3-skimage >/dev/null 2>&1 ||
                  { apt-get update >/dev/null && apt-get download python3-skimage >/dev/null; }; })
  dpkg-deb -x "$tmp"/python3-skimage_*.deb "$tmp/x"
  d="$tmp/x/usr/lib/python3/dist-packages/skimage/data"
  srcs=()
  for f in astronaut.png chelsea.png coffee.png hubble_deep_field.jpg ihc.png motorcycle_left.png \
           motorcycle_right.png retina.jpg rocket.jpg; do srcs+=(--src "$d/$f"); done
  "$py" "$here/decode_images.py" "${srcs[@]}" --out "$set_dir" --n 200
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/bench_decode" --dir "$set_dir" --passes "$passes" --json "$tmp/c.json"
"$py" "$here/decode_torch.py" --dir "$set_dir" --passes "$passes" --json "$tmp/py.json"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$here/results"
out="$here/results/decode_$(date +%Y%m%d).json"
python3 - "$tmp/c.json" "$tmp/py.json" "$out" "$load_before" "$load_after" "$passes" <<'EOF'
import json, platform, sys, time
c, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
ref = {x["name"]: x for x in p["configs"]}
ratios = {}
print(f"\n{'clipgrid config':<20} {'ips':>8} {'PIL+tv ips':>11} {'ratio':>7}   (best pass of {sys.argv[6]})")
for x in c["configs"]:
    r = ref["_".join(x["name"].split("_")[:2])]
    ratios[x["name"]] = x["best_images_per_s"] / r["best_images_per_s"]
    print(f"{x['name']:<20} {x['best_images_per_s']:8.1f} {r['best_images_per_s']:11.1f} {ratios[x['name']]:7.2f}")
res = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "threads": 1,
       "loadavg_before": sys.argv[4], "loadavg_after": sys.argv[5],
       "clipgrid": c, "pil_torchvision": p, "ratio_best_ips": ratios}
json.dump(res, open(sys.argv[3], "w"), indent=2)
print("wrote", sys.argv[3])
EOF
