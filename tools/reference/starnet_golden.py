#!/usr/bin/env python3
"""Golden tensors for tests/test_starnet.c, from timm's StarNet (torch, CPU, float32).

For each case: build the timm model with a CLIP-style head (num_classes = embed_dim), make the
BatchNorm parameters and running statistics non-trivial, then
  * train mode: out = model(x); loss = sum(out * r); loss.backward()
      -> output, every parameter gradient, BatchNorm running stats after the step
  * eval mode (running statistics, as updated by the train step): the same loss and backward
      -> output (and, where asked, every parameter gradient)
Writes into tests/golden/<case>/ (safetensors, timm tensor names):
  weights.safetensors        state dict BEFORE the step (params + buffers + num_batches_tracked)
  io.safetensors             input x [N,3,H,W], r [N,D], out_train [N,D], out_eval [N,D]; config in metadata
  grads_train.safetensors    d loss / d param (train mode), by parameter name
  buffers_after.safetensors  running_mean / running_var / num_batches_tracked after the train step
  grads_eval.safetensors     d loss / d param (eval mode), when the case asks for it

Run:  /work/venv/bin/python tools/reference/starnet_golden.py   (pip install torch timm safetensors numpy)
"""
import json
import os
import sys

import torch
import timm
from timm.models.starnet import StarNet
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden"))

# name, builder, image size, batch, embed dim, save eval grads
CASES = [
    # the real starnet_s050 (base 16, depths 1,1,3,1, mlp 3)
    dict(case="starnet_s050", timm_name="starnet_s050", base_dim=16, depths=[1, 1, 3, 1], mlp_ratio=3,
         size=64, batch=4, embed=32, eval_grads=False, seed=1),
    # s1's structure (depths 2,2,8,3, mlp 4, stem 32 -> base) at a third of its width, so the
    # golden files stay small; every code path of s1 is exercised (several blocks per stage).
    dict(case="starnet_s1_w8", timm_name=None, base_dim=8, depths=[2, 2, 8, 3], mlp_ratio=4,
         size=48, batch=4, embed=16, eval_grads=True, seed=2),
]


def build(c):
    if c["timm_name"]:
        return timm.create_model(c["timm_name"], num_classes=c["embed"], drop_path_rate=0.0)
    return StarNet(base_dim=c["base_dim"], depths=c["depths"], mlp_ratio=c["mlp_ratio"], num_classes=c["embed"],
                   drop_path_rate=0.0)


def contiguous(sd):
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def main():
    torch.set_num_threads(1)
    for c in CASES:
        torch.manual_seed(c["seed"])
        model = build(c).float()
        # non-trivial BatchNorm affine params and running statistics
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.weight.copy_(1.0 + 0.2 * torch.randn_like(mod.weight))
                    mod.bias.copy_(0.2 * torch.randn_like(mod.bias))
                    mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                    mod.running_var.copy_(1.0 + 0.5 * torch.rand_like(mod.running_var))
                    mod.num_batches_tracked.fill_(3)
        weights = contiguous(model.state_dict())
        x = torch.randn(c["batch"], 3, c["size"], c["size"])
        r = torch.randn(c["batch"], c["embed"])

        model.train()
        model.zero_grad()
        out_train = model(x)
        (out_train * r).sum().backward()
        grads_train = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters()}
        buffers_after = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                         if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}

        model.eval()
        model.zero_grad()
        out_eval = model(x)
        (out_eval * r).sum().backward()
        grads_eval = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters()}

        d = os.path.join(OUT, c["case"])
        os.makedirs(d, exist_ok=True)
        meta = {k: json.dumps(c[k]) for k in ("base_dim", "depths", "mlp_ratio", "size", "batch", "embed")}
        meta["timm"] = timm.__version__
        meta["torch"] = torch.__version__
        save_file(weights, os.path.join(d, "weights.safetensors"), metadata={"format": "pt"})
        save_file({"x": x, "r": r, "out_train": out_train.detach().contiguous(),
                   "out_eval": out_eval.detach().contiguous()}, os.path.join(d, "io.safetensors"), metadata=meta)
        save_file(grads_train, os.path.join(d, "grads_train.safetensors"))
        save_file(buffers_after, os.path.join(d, "buffers_after.safetensors"))
        if c["eval_grads"]:
            save_file(grads_eval, os.path.join(d, "grads_eval.safetensors"))
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{c['case']}: {n_params} params, x {tuple(x.shape)}, out {tuple(out_train.shape)} -> {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
