"""PyTorch CPU side of the training-throughput comparison (bench/clip_train_compare.sh).

Builds the same CLIP configuration clipgrid trains — timm StarNet with its head projecting to the
joint width, a transformers CLIP text model (clip:tiny: width 128, 2 layers, 2 heads, MLP 512,
QuickGELU) or BERT (bert:tiny: the same sizes, GELU) with a bias-free projection, a learnable
logit scale and open_clip's ClipLoss — and times full training steps (forward, backward, grad-norm
clipping, AdamW) on random batches of the same shape. Data loading is not included (clipgrid's
figure includes its augmentation), so the comparison flatters PyTorch slightly.

usage: python bench/clip_train_torch.py --image starnet_s050 --text clip:tiny --batch 64 --size 32
           --context 24 --vocab 602 --steps 20 --threads 2
prints one JSON line: {"images_per_s": ..., ...}
"""
import argparse
import json
import math
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModelWithProjection

p = argparse.ArgumentParser()
p.add_argument("--image", default="starnet_s050")
p.add_argument("--text", default="clip:tiny")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--size", type=int, default=32)
p.add_argument("--context", type=int, default=24)
p.add_argument("--vocab", type=int, default=602)
p.add_argument("--embed", type=int, default=512)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup-steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

image = timm.create_model(a.image, num_classes=a.embed)
if a.text.startswith("clip"):
    cfg = CLIPTextConfig(vocab_size=a.vocab, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=a.context, hidden_act="quick_gelu",
                         projection_dim=a.embed, eos_token_id=a.vocab - 1)
    text = CLIPTextModelWithProjection(cfg)
    def encode(ids):
        return text(input_ids=ids).text_embeds
else:
    cfg = BertConfig(vocab_size=a.vocab, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=2, max_position_embeddings=512, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    bert = BertModel(cfg, add_pooling_layer=False)
    proj = nn.Linear(128, a.embed, bias=False)
    text = nn.ModuleDict({"bert": bert, "proj": proj})
    def encode(ids):
        return proj(bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0])
logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
params = list(image.parameters()) + list(text.parameters()) + [logit_scale]
opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)

x = torch.randn(a.batch, 3, a.size, a.size)
ids = torch.randint(1, a.vocab - 1, (a.batch, a.context))
ids[:, -1] = a.vocab - 1
labels = torch.arange(a.batch)
image.train()

def step():
    opt.zero_grad(set_to_none=True)
    fi = F.normalize(image(x), dim=-1)
    ft = F.normalize(encode(ids), dim=-1)
    logits = logit_scale.exp() * fi @ ft.T
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        logit_scale.clamp_(0, math.log(100))
    return loss.item()

for _ in range(a.warmup_steps):
    step()
t = time.time()
for _ in range(a.steps):
    step()
dt = time.time() - t
print(json.dumps({"framework": "pytorch " + torch.__version__, "image": a.image, "text": a.text, "batch": a.batch,
                  "size": a.size, "context": a.context, "threads": a.threads, "steps": a.steps,
                  "images_per_s": a.batch * a.steps / dt}))
