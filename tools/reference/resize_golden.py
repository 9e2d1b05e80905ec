"""Golden files for clipgrid's PIL-exact resizing and transforms (tests/test_transform.c).

Pillow's Image.resize(size, BICUBIC, box) and torchvision's F.resized_crop, Resize + CenterCrop
and ToTensor + Normalize, on synthetic test images: smooth gradients, noise, sharp-edged
rectangles, a checkerboard and a diagonal line, in a few sizes (odd ones too), RGB and L.

The images come from an integer hash (`make_image`), not from files, so the golden directory
holds outputs only and the C test rebuilds the same inputs (tests/test_transform.c has the same
function; the index records each image's byte sum and a hash of its bytes to catch a mismatch).

Writes tests/golden/resize/:
  index.txt          one line per image and per case (format in its header)
  <case>.u8.gz       the expected output, dh × dw × c bytes, row-major interleaved, gzip
  normalize.f32      ToTensor + Normalize(CLIP mean, std) of the values 0..255, 3 × 256 float32 LE

usage: /work/venv/bin/python tools/reference/resize_golden.py
"""
import gzip
import os

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

M32 = 0xFFFFFFFF


def mix32(h):
    """A 32-bit integer hash (murmur3's finaliser) on uint32 arrays."""
    h = h.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h = (h * np.uint32(0x85EBCA6B)).astype(np.uint32)
    h ^= h >> np.uint32(13)
    h = (h * np.uint32(0xC2B2AE35)).astype(np.uint32)
    h ^= h >> np.uint32(16)
    return h


def make_image(w, h, c, seed):
    """h × w × c uint8: gradients + noise (±24) + sharp edges. Integer arithmetic only."""
    y, x, ch = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64),
                           np.arange(c, dtype=np.int64), indexing="ij")
    # smooth part: a different gradient per channel
    v = np.where(ch == 0, x * 255 // max(w - 1, 1),
                 np.where(ch == 1, y * 255 // max(h - 1, 1), (x + y) * 255 // max(w + h - 2, 1)))
    # noise
    key = (x.astype(np.uint64) * np.uint64(73856093) ^ y.astype(np.uint64) * np.uint64(19349663)
           ^ ch.astype(np.uint64) * np.uint64(83492791) ^ np.uint64(seed) * np.uint64(2654435761))
    key = (key & np.uint64(M32)).astype(np.uint32)
    v = v + (mix32(key) % np.uint32(49)).astype(np.int64) - 24
    # sharp edges: a bright/dark rectangle, a checkerboard of 3-pixel cells, a diagonal line
    rect = (x >= w // 4) & (x < w // 2) & (y >= h // 3) & (y < 2 * h // 3)
    v = np.where(rect, np.where(ch % 2 == 0, 250, 5), v)
    board = (x >= 3 * w // 5) & (x < 4 * w // 5) & (y >= h // 8) & (y < h // 3)
    v = np.where(board, ((x // 3 + y // 3) % 2) * 255, v)
    line = np.abs(x * h - y * w) < max(w, h)  # about one pixel wide
    v = np.where(line, 255 - v, v)
    return np.clip(v, 0, 255).astype(np.uint8)


def fnv1a(b):
    """32-bit FNV-1a of bytes (the C test computes the same)."""
    h = 2166136261
    for x in b:
        h = ((h ^ x) * 16777619) & M32
    return h


def to_pil(a):
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, "L" if a.shape[2] == 1 else "RGB")


def from_pil(im):
    a = np.asarray(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


IMAGES = {  # name: (w, h, c, seed)
    "A": (500, 375, 3, 1),    # the typical photo size of the benchmark
    "B": (333, 251, 1, 2),    # odd sides, gray
    "C": (13, 17, 3, 3),      # tiny: upscaling
    "D": (97, 61, 3, 4),      # odd sides
    "E": (281, 500, 3, 5),    # portrait
    "F": (7, 5, 1, 6),        # tiny gray
}

# (name, image, op, dw, dh, box or crop or size)
#   resize: Image.resize((dw, dh), BICUBIC, box=box) (box None: the whole image)
#   crop:   F.resized_crop(img, top, left, height, width, [dh, dw], BICUBIC): box = (left, top, right, bottom)
#   eval:   CenterCrop(size)(Resize(size, BICUBIC)(img)), size = dw = dh
CASES = [
    ("down_224", "A", "resize", 224, 224, None),
    ("down_37x29", "A", "resize", 37, 29, None),
    ("down_gray_111x67", "B", "resize", 111, 67, None),
    ("up_64x48", "C", "resize", 64, 48, None),
    ("up_40x41", "C", "resize", 40, 41, None),
    ("up_gray_30x22", "F", "resize", 30, 22, None),
    ("box_frac_rgb", "A", "resize", 96, 80, (10.5, 20.25, 400.75, 300.5)),
    ("box_frac_gray", "B", "resize", 100, 80, (3.3, 7.7, 250.1, 240.9)),
    ("box_up", "D", "resize", 128, 96, (5.5, 3.25, 40.75, 30.5)),
    ("box_edge", "A", "resize", 60, 50, (0.0, 0.0, 499.9, 374.6)),
    ("crop_rgb", "A", "crop", 128, 128, (41, 30, 442, 330)),
    ("crop_gray", "B", "crop", 64, 64, (20, 10, 170, 210)),
    ("crop_up", "D", "crop", 48, 48, (7, 5, 37, 25)),
    ("crop_edges", "D", "crop", 32, 40, (0, 0, 97, 61)),
    ("eval_224", "A", "eval", 224, 224, None),
    ("eval_97_portrait", "E", "eval", 97, 97, None),
    # (n - size) / 2 = 10.5 and 6.5: CenterCrop rounds halves to even (10, 6), not up
    ("eval_36_half_even", "D", "eval", 36, 36, None),
    ("eval_45_up", "C", "eval", 45, 45, None),
]


def run_case(img, op, dw, dh, arg):
    im = to_pil(img)
    if op == "resize":
        return from_pil(im.resize((dw, dh), Image.BICUBIC, box=arg))
    if op == "crop":
        left, top, right, bottom = arg
        out = F.resized_crop(im, top, left, bottom - top, right - left, [dh, dw],
                             interpolation=T.InterpolationMode.BICUBIC)
        return from_pil(out)
    if op == "eval":
        tf = T.Compose([T.Resize(dw, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(dw)])
        return from_pil(tf(im))
    raise ValueError(op)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "resize")
    os.makedirs(out, exist_ok=True)
    imgs = {k: make_image(*v) for k, v in IMAGES.items()}
    lines = [
        f"# Pillow {PIL.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}",
        "# image NAME W H C SEED BYTESUM FNV1A32",
        "# case NAME IMAGE OP DW DH A B C D   (OP resize: box x0 y0 x1 y1 or '-'; crop: left top right bottom;",
        "#   eval: size in DW) -> NAME.u8.gz, DH x DW x C bytes",
    ]
    for k, (w, h, c, seed) in IMAGES.items():
        b = imgs[k].tobytes()
        lines.append(f"image {k} {w} {h} {c} {seed} {sum(b)} {fnv1a(b)}")
    for name, src, op, dw, dh, arg in CASES:
        res = run_case(imgs[src], op, dw, dh, arg)
        assert res.shape == (dh, dw, IMAGES[src][2]), (name, res.shape)
        with gzip.GzipFile(os.path.join(out, name + ".u8.gz"), "wb", mtime=0) as f:
            f.write(res.tobytes())
        a = " ".join(repr(float(v)) if op == "resize" else str(v) for v in arg) if arg else "- - - -"
        lines.append(f"case {name} {src} {op} {dw} {dh} {a}")
    with open(os.path.join(out, "index.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # ToTensor + Normalize of every 8-bit value, per channel
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    norm = T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    t = norm(T.ToTensor()(Image.fromarray(ramp, "RGB")))  # 3 x 1 x 256
    t.numpy().astype("<f4").tofile(os.path.join(out, "normalize.f32"))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{len(CASES)} cases, {len(IMAGES)} images, {total} bytes in {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
