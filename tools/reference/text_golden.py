#!/usr/bin/env python3
"""Golden files for tests/test_text_transformer.c, from Hugging Face transformers (torch CPU, fp32).

Tiny configurations of the two text towers, random weights from a fixed seed (never downloaded),
saved with save_pretrained() as real HF model directories, so the C test loads them through the
same loader users point --text-pretrained at:

  tests/golden/text_clip_tiny/      CLIPTextModelWithProjection   (text_model.* + text_projection.weight)
  tests/golden/text_bert_tiny/      BertModel                     (bare names, pooler.* present and unused)
  tests/golden/text_bert_tiny_pt/   BertForPreTraining, same weights (bert.* names, cls.* heads)

Each case also has, next to config.json and model.safetensors:
  io.safetensors      ids [B,T] (I64), r [B,E], emb [B,E] (the pooled, projected output);
                      BERT: text_projection.weight [E,C] (BertModel has no projection: the
                      Chinese-CLIP one, emb = hidden[:, 0] @ W^T, is applied here)
  grads.safetensors   d(sum(emb * r)) / d(every parameter), by HF name (the unused BERT pooler
                      has none)

Every parameter is drawn non-trivially (LayerNorm weights around 1, biases non-zero), dropout is
off (eval mode), attention is the eager implementation.

Run:  /work/venv/bin/pip install torch transformers safetensors
      /work/venv/bin/python tools/reference/text_golden.py
"""
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForPreTraining, BertModel, CLIPTextConfig,
                          CLIPTextModelWithProjection)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden"))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:  # matrices: keep activations O(1)
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def fresh_dir(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def grads_of(model, prefix=""):
    return {prefix + n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters() if p.grad is not None}


def clip_case():
    V, C, E = 1000, 32, 24
    cfg = CLIPTextConfig(vocab_size=V, hidden_size=C, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, projection_dim=E, bos_token_id=V - 2, eos_token_id=V - 1,
                         pad_token_id=V - 1, attention_dropout=0.0, dropout=0.0)
    cfg._attn_implementation = "eager"
    torch.manual_seed(11)
    model = CLIPTextModelWithProjection(cfg).float().eval()
    randomise(model, 11)
    B, T = 3, 12
    g = torch.Generator().manual_seed(12)
    ids = torch.full((B, T), V - 1, dtype=torch.long)      # HF pads with <|endoftext|>
    for b, n in enumerate([5, 12, 8]):                       # tokens per row, SOT and EOT included
        ids[b, 0] = V - 2
        ids[b, 1:n - 1] = torch.randint(0, V - 2, (n - 2,), generator=g)
        ids[b, n - 1] = V - 1
    out = model(input_ids=ids).text_embeds
    r = torch.randn(out.shape, generator=g)
    (out * r).sum().backward()
    d = fresh_dir("text_clip_tiny")
    model.save_pretrained(d, safe_serialization=True)
    save_file({"ids": ids, "r": r, "emb": out.detach().contiguous()}, os.path.join(d, "io.safetensors"),
              metadata={"case": "text_clip_tiny"})
    save_file(grads_of(model), os.path.join(d, "grads.safetensors"))
    print("text_clip_tiny", tuple(out.shape), float(out.abs().max()))


def bert_cases():
    V, C, E = 500, 32, 24
    cfg = BertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=2, num_attention_heads=4, intermediate_size=72,
                     max_position_embeddings=20, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
                     pad_token_id=0)
    cfg._attn_implementation = "eager"
    torch.manual_seed(21)
    model = BertModel(cfg, add_pooling_layer=True).float().eval()
    randomise(model, 21)
    B, T = 3, 10
    g = torch.Generator().manual_seed(22)
    ids = torch.zeros((B, T), dtype=torch.long)               # [PAD] = 0 after [SEP]
    for b, n in enumerate([10, 4, 7]):
        ids[b, 0] = 2                                          # [CLS]
        ids[b, 1:n - 1] = torch.randint(5, V, (n - 2,), generator=g)
        ids[b, n - 1] = 3                                      # [SEP]
    proj = torch.nn.Parameter(torch.randn(E, C, generator=g) / C ** 0.5)
    hidden = model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    out = hidden[:, 0, :] @ proj.T
    r = torch.randn(out.shape, generator=g)
    (out * r).sum().backward()
    grads = grads_of(model)
    grads["text_projection.weight"] = proj.grad.detach().clone()
    d = fresh_dir("text_bert_tiny")
    model.save_pretrained(d, safe_serialization=True)
    io = {"ids": ids, "r": r, "emb": out.detach().contiguous(), "text_projection.weight": proj.detach().clone()}
    save_file(io, os.path.join(d, "io.safetensors"), metadata={"case": "text_bert_tiny"})
    save_file(grads, os.path.join(d, "grads.safetensors"))
    print("text_bert_tiny", tuple(out.shape), float(out.abs().max()))

    # the same weights as BertForPreTraining: bert.* names, cls.* heads, pooler
    pt = BertForPreTraining(cfg).float().eval()
    missing, unexpected = pt.bert.load_state_dict(model.state_dict(), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    d = fresh_dir("text_bert_tiny_pt")
    pt.save_pretrained(d, safe_serialization=True)
    print("text_bert_tiny_pt: same weights, bert.* names")


def main():
    torch.set_num_threads(1)
    clip_case()
    bert_cases()


if __name__ == "__main__":
    main()
