"""Golden file for clipgrid's AdamW, cosine schedule and gradient clipping (tests/test_adamw.c).

Runs the real torch.optim.AdamW (foreach=False, the CPU default path), open_clip's cosine_lr
formula and torch.nn.utils.clip_grad_norm_ on three small tensors and writes every input and
every intermediate result to tests/golden/optim/optim.safetensors:

  <name>.init                      initial values ("w" [6, 5] decays; "ln.weight" [5] and
                                   "proj.bias" [5] are exempt, as open_clip's rule says)
  <name>.grad.<k>                  raw gradient given at step k (k = 0..4)
  <name>.after.<k>                 parameter after step k
  lr                               [5] learning rate used at each step (cosine, warmup 2, total 5)
  grad_norm                        [5] total norm returned by clip_grad_norm_(max_norm=1.0)

usage: /work/venv/bin/python tools/reference/optim_golden.py
"""
import math
import os

import torch
from safetensors.torch import save_file

torch.manual_seed(1234)
here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "..", "tests", "golden", "optim")
os.makedirs(out_dir, exist_ok=True)

shapes = {"w": (6, 5), "ln.weight": (5,), "proj.bias": (5,)}
params = {n: torch.nn.Parameter(torch.randn(*s)) for n, s in shapes.items()}
decay = [params["w"]]
no_decay = [params["ln.weight"], params["proj.bias"]]
base_lr, warmup, total, wd = 0.05, 2, 5, 0.2
opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=base_lr, betas=(0.9, 0.98), eps=1e-6, foreach=False)

def cosine_lr(step):
    if step < warmup:
        return base_lr * (step + 1) / warmup
    e, es = step - warmup, total - warmup
    return 0.5 * (1 + math.cos(math.pi * e / es)) * base_lr

tensors = {f"{n}.init": p.detach().clone() for n, p in params.items()}
lrs, norms = [], []
for k in range(total):
    lr = cosine_lr(k)
    for g in opt.param_groups:
        g["lr"] = lr
    for n, p in params.items():
        p.grad = torch.randn_like(p) * (3.0 if k == 1 else 0.3)  # step 1 gets clipped
        tensors[f"{n}.grad.{k}"] = p.grad.detach().clone()
    norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm=1.0)))
    opt.step()
    lrs.append(lr)
    for n, p in params.items():
        tensors[f"{n}.after.{k}"] = p.detach().clone()
tensors["lr"] = torch.tensor(lrs, dtype=torch.float64)
tensors["grad_norm"] = torch.tensor(norms, dtype=torch.float32)
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "optim.safetensors"),
          metadata={"torch": torch.__version__, "betas": "0.9,0.98", "eps": "1e-6", "wd": str(wd),
                    "base_lr": str(base_lr), "warmup": str(warmup), "total": str(total)})
print("wrote", os.path.join(out_dir, "optim.safetensors"), "torch", torch.__version__)
