"""The JPEG set for bench/decode_compare.sh: N photos of about 500x375, quality 90.

Cut from real photos (--src: photo files, or directories searched for RGB PNG/JPEG of at least
300x300; the driver passes the nine colour photos of scikit-image's sample data, extracted from
the Debian package python3-skimage): for image
i, photo i mod P, a random crop of 55-100% of its largest 4:3 (one in five: 3:4) region, resized
to 500x375 (375x500) with Lanczos — an upscale for the smaller photos —, flipped at random,
saved with Pillow at quality 90 (4:2:0 chroma, as Pillow's default).

usage: python bench/decode_images.py --src PATH [--src PATH ...] --out DIR [--n 200] [--seed 0]
"""
import argparse
import os
import random

from PIL import Image


def photos(paths):
    found = []
    for d in paths:
        walk = os.walk(d) if os.path.isdir(d) else [(os.path.dirname(d), [], [os.path.basename(d)])]
        for root, _, files in walk:
            for f in sorted(files):
                if not f.lower().endswith((".png", ".jpg", ".jpeg")):
                    continue
                p = os.path.join(root, f)
                try:
                    with Image.open(p) as im:
                        if im.mode in ("RGB", "RGBA") and min(im.size) >= 300:
                            found.append(p)
                except OSError:
                    pass
    return sorted(found)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    src = photos(a.src)
    if not src:
        raise SystemExit("no RGB photos of at least 300x300 under " + ", ".join(a.src))
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    for i in range(a.n):
        im = Image.open(src[i % len(src)]).convert("RGB")
        portrait = rng.random() < 0.2
        tw, th = (375, 500) if portrait else (500, 375)
        w, h = im.size
        cw = min(w, h * tw // th)  # the largest region of the target's aspect ratio
        ch = cw * th // tw
        f = rng.uniform(0.55, 1.0)
        cw, ch = max(int(cw * f), 1), max(int(ch * f), 1)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        out = im.crop((x, y, x + cw, y + ch)).resize((tw, th), Image.LANCZOS)
        if rng.random() < 0.5:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        out.save(os.path.join(a.out, f"img_{i:04d}.jpg"), quality=90)
    print(f"{a.n} JPEGs from {len(src)} photos in {a.out}")
    for p in src:
        print("  ", p)


if __name__ == "__main__":
    main()
