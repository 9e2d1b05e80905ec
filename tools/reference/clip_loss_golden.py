"""Golden file for clipgrid's contrastive loss (tests/test_clip_loss.c).

open_clip's ClipLoss written out in torch (F.normalize, logit_scale.exp(), symmetric
cross-entropy with labels 0..B-1), on random image and text features; writes the inputs, the loss
and the gradients of both feature matrices and of logit_scale to
tests/golden/clip_loss/clip_loss.safetensors.

usage: /work/venv/bin/python tools/reference/clip_loss_golden.py
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(7)
B, D = 8, 16
xi = torch.randn(B, D, requires_grad=True)
xt = (torch.randn(B, D) + 0.3 * xi.detach()).requires_grad_(True)  # some signal on the diagonal
logit_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
ni, nt = F.normalize(xi, dim=-1), F.normalize(xt, dim=-1)
logits = logit_scale.exp() * ni @ nt.T
labels = torch.arange(B)
loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
loss.backward()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "clip_loss")
os.makedirs(out, exist_ok=True)
save_file({"xi": xi.detach(), "xt": xt.detach(), "logit_scale": logit_scale.detach().reshape(1),
           "loss": loss.detach().reshape(1), "d_xi": xi.grad, "d_xt": xt.grad,
           "d_logit_scale": logit_scale.grad.reshape(1)},
          os.path.join(out, "clip_loss.safetensors"), metadata={"torch": torch.__version__})
print("loss", loss.item())
