#!/usr/bin/env python3
"""PyTorch CPU side of bench/bench_starnet.c: timm StarNet, train-mode forward + backward of
sum(out * r), same threads / batch / sizes. Prints images/s of the best of --iters steps; --json writes
[{"model": "starnet_s1", "size": 224, "ips": ...}, ...].

  python bench/starnet_torch.py --models s050,s1,s4 --sizes 64,224 --batch 32 --threads 2 --iters 3
"""
import argparse
import json
import time

import torch
import timm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="s050,s1,s4")
    ap.add_argument("--sizes", default="64,224")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--embed", type=int, default=512)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = []
    for m in a.models.split(","):
        name = "starnet_" + m
        for s in [int(v) for v in a.sizes.split(",")]:
            model = timm.create_model(name, num_classes=a.embed).train()
            x = torch.randn(a.batch, 3, s, s)
            r = torch.randn(a.batch, a.embed)
            def step():
                model.zero_grad(set_to_none=False)
                (model(x) * r).sum().backward()
            step()  # warm-up
            dt = 1e30  # best of iters: robust against other processes on a shared machine
            for _ in range(a.iters):
                t = time.perf_counter()
                step()
                dt = min(dt, time.perf_counter() - t)
            ips = a.batch / dt
            print(f"torch {name} {s}px: {ips:.2f} img/s ({dt:.3f} s/step, {torch.get_num_threads()} threads)", flush=True)
            out.append({"model": name, "size": s, "ips": ips, "step_s": dt, "torch": torch.__version__})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
