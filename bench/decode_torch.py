"""PIL + torchvision side of bench/decode_compare.sh: images/s of open_clip's train preprocessing.

For every JPEG in --dir, in order: PIL.Image.open + convert("RGB") (read and decode),
RandomResizedCrop(size, scale=(lo, 1.0), ratio=(3/4, 4/3), interpolation=BICUBIC),
RandomHorizontalFlip(), ToTensor(), Normalize(CLIP mean, std) — one thread
(torch.set_num_threads(1)). RRC scale 0.9-1 (open_clip) and 0.08-1 (ImageNet); --passes passes
each, best and median pass reported, with the time split into read+decode and transform.
Prints a table and writes --json.

usage: python bench/decode_torch.py --dir DIR [--passes 3] [--size 224] [--json out.json]
"""
import argparse
import json
import os
import statistics
import time

import PIL
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def run_pass(files, tf):
    t_dec = t_tf = 0.0
    t0 = time.perf_counter()
    for f in files:
        a = time.perf_counter()
        with Image.open(f) as im:
            img = im.convert("RGB")
        b = time.perf_counter()
        x = tf(img)
        c = time.perf_counter()
        assert x.shape[0] == 3
        t_dec += b - a
        t_tf += c - b
    ips = len(files) / (time.perf_counter() - t0)
    return ips, 1e3 * t_dec / len(files), 1e3 * t_tf / len(files)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.endswith((".jpg", ".jpeg")))
    if not files:
        raise SystemExit(f"no .jpg files in {a.dir}")
    torch.manual_seed(0)
    print(f"{len(files)} JPEGs from {a.dir}, one thread, {a.passes} passes each, "
          f"Pillow {PIL.__version__}, torchvision {torchvision.__version__}")
    print(f"{'config':<18} {'best_ips':>10} {'median':>10} {'decode_ms':>10} {'xform_ms':>9}")
    out = []
    for lo in (0.9, 0.08):
        tf = T.Compose([
            T.RandomResizedCrop(a.size, scale=(lo, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ])
        runs = [run_pass(files, tf) for _ in range(a.passes)]
        best = max(runs)
        name = f"rrc_{lo:g}-1"
        out.append({"name": name, "scale_lo": lo, "best_images_per_s": best[0],
                    "median_images_per_s": statistics.median(r[0] for r in runs),
                    "read_decode_ms": best[1], "transform_ms": best[2]})
        print(f"{name:<18} {best[0]:10.1f} {out[-1]['median_images_per_s']:10.1f} {best[1]:10.3f} {best[2]:9.3f}")
    res = {"side": "pil_torchvision", "pillow": PIL.__version__, "torch": torch.__version__,
           "torchvision": torchvision.__version__, "images": len(files), "passes": a.passes, "size": a.size,
           "threads": torch.get_num_threads(), "configs": out}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
