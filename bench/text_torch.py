#!/usr/bin/env python3
"""PyTorch CPU side of bench/bench_text.c: the same text towers built from HF configs (random
weights, nothing downloaded), forward + backward of sum(emb * r), same threads / batch / length.

  CLIP:  CLIPTextModelWithProjection (text_embeds)
  BERT:  BertModel without pooler, last_hidden_state[:, 0] @ W^T (Chinese-CLIP's projection)

torch's default attention (SDPA) and no dropout (eval mode), as the C towers. Prints
sequences/s of the best of --iters steps after one warm-up; --json writes
[{"model": "clip:ViT-B/32", "sps": ..., "step_s": ...}, ...].

  python bench/text_torch.py --models clip:tiny,bert:tiny --batch 16 --threads 2 --iters 3
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModelWithProjection

# name: (kind, vocab, context, max positions, width, layers, heads, mlp) -- src/models/zoo.c
TOWERS = {
    "clip:ViT-B/32": ("clip", 49408, 77, 77, 512, 12, 8, 2048),
    "bert-base-chinese": ("bert", 21128, 52, 512, 768, 12, 12, 3072),
    "clip:tiny": ("clip", 49408, 77, 77, 128, 2, 2, 512),
    "bert:tiny": ("bert", 21128, 52, 512, 128, 2, 2, 512),
}


def build(name, embed):
    kind, V, T, P, C, L, H, F = TOWERS[name]
    if kind == "clip":
        cfg = CLIPTextConfig(vocab_size=V, hidden_size=C, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
                             max_position_embeddings=P, hidden_act="quick_gelu", projection_dim=embed,
                             eos_token_id=V - 1)
        model = CLIPTextModelWithProjection(cfg).eval()
        return model, lambda ids: model(input_ids=ids).text_embeds, T, V
    cfg = BertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=L, num_attention_heads=H, intermediate_size=F,
                     max_position_embeddings=P, hidden_act="gelu", layer_norm_eps=1e-12)
    model = BertModel(cfg, add_pooling_layer=False).eval()
    proj = torch.nn.Linear(C, embed, bias=False)
    model.add_module("text_projection", proj)
    return model, lambda ids: proj(model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]), T, V


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="clip:tiny,bert:tiny,clip:ViT-B/32,bert-base-chinese")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--embed", type=int, default=512)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = []
    for name in a.models.split(","):
        model, fwd, T, V = build(name, a.embed)
        ids = torch.randint(1, V - 1, (a.batch, T))
        ids[:, -1] = V - 1  # full-length texts ending with EOT / [SEP]-like
        r = torch.randn(a.batch, a.embed)

        def step():
            model.zero_grad(set_to_none=False)
            (fwd(ids) * r).sum().backward()

        step()  # warm-up
        dt = 1e30  # best of iters: robust against other processes on a shared machine
        for _ in range(a.iters):
            t = time.perf_counter()
            step()
            dt = min(dt, time.perf_counter() - t)
        sps = a.batch / dt
        print(f"torch {name}: {sps:.2f} seq/s ({dt:.3f} s/step, T={T}, {torch.get_num_threads()} threads)", flush=True)
        out.append({"model": name, "sps": sps, "step_s": dt, "torch": torch.__version__})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
