#!/usr/bin/env python3
"""Golden training run for tests/test_clip_train.c: five steps of a tiny CLIP in PyTorch.

The same model, loss and optimizer as `clipgrid train`, built from configs with fixed seeds
(nothing is downloaded), torch CPU fp32, one thread:

  image tower  timm.create_model("starnet_s050", num_classes=E): the head is the projection to
               the joint width E; train mode (BatchNorm on batch statistics), drop_path 0
  text tower   a tiny transformers CLIPTextModelWithProjection (vocab 600, width 64, 2 layers,
               2 heads, MLP 256, 24 positions, quick_gelu, eos = the last id), saved with
               save_pretrained() into tests/golden/clip_train/text_hf/ so the C test loads it
               through the --text-pretrained loader
  logit_scale  a 0-dim parameter, ln(1/0.07); clamped to [0, ln 100] after each step
  loss         open_clip's ClipLoss: F.normalize both embeddings, logit_scale.exp(), symmetric CE
  optimizer    torch.optim.AdamW(foreach=False), betas (0.9, 0.98), eps 1e-6, two groups by the
               rule of src/train/adamw.c adamw_decays(): no decay for ndim < 2 or a name holding
               bn / ln / norm / bias / logit_scale / position / token_type, else wd 0.2;
               clip_grad_norm_(all parameters, 1.0) before each step; lr from open_clip's
               cosine_lr (base 1e-3, warmup 2, 5 steps)

Every parameter and buffer is rounded to a float16 value before training, so init.safetensors
stores them exactly as F16 (half the bytes; the C reader widens them). BatchNorm affine
parameters, running statistics, the head bias and the text LayerNorms are made non-trivial.

Writes tests/golden/clip_train/ (clipgrid checkpoint names: "visual." + timm names, "text." +
Hugging Face names, "logit_scale"):
  text_hf/                   config.json + model.safetensors (the text tower's initial weights)
  init.safetensors           every initial tensor of the three groups (F16; num_batches_tracked I64)
  batches.safetensors        images_<k> [B,3,32,32] (F16 values), ids_<k> [B,T] I32, k = 0..4
  expected.safetensors       loss [5], lr [5] (f64), grad_norm [5]; "grad.<name>": every parameter
                             gradient of step 1 (before clipping); "after.<name>": logit_scale
                             and every BatchNorm buffer after step 5

Run:  /work/venv/bin/python tools/reference/clip_train_golden.py   (pip install torch timm transformers safetensors)
"""
import math
import os
import shutil

import timm
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden", "clip_train"))

E = 32                     # joint embedding width
B, S, STEPS = 8, 32, 5     # batch, image size, optimizer steps
V, C, T = 600, 64, 24      # text vocabulary, width, context (= max positions)
BASE_LR, WARMUP, WD = 1e-3, 2, 0.2
BETAS, EPS, CLIP = (0.9, 0.98), 1e-6, 1.0
SCALE_INIT, SCALE_MAX = math.log(1 / 0.07), math.log(100)

EXEMPT = ("bn", "ln", "norm", "bias", "logit_scale", "position", "token_type")


def decays(name, ndim):
    """src/train/adamw.c adamw_decays(): open_clip's rule on the tower's own tensor name."""
    return ndim >= 2 and not any(s in name for s in EXEMPT)


def cosine_lr(step):
    """open_clip cosine_lr with linear warmup, step counted from 0 (src/train/schedule.c)."""
    if step < WARMUP:
        return BASE_LR * (step + 1) / WARMUP
    e, es = step - WARMUP, STEPS - WARMUP
    return 0.5 * (1 + math.cos(math.pi * e / es)) * BASE_LR


def image_tower():
    torch.manual_seed(1)
    m = timm.create_model("starnet_s050", num_classes=E, drop_path_rate=0.0).float()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(1.0 + 0.2 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.2 * torch.randn_like(mod.bias))
                mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                mod.running_var.copy_(1.0 + 0.5 * torch.rand_like(mod.running_var))
                mod.num_batches_tracked.fill_(3)
        m.head.weight.copy_(torch.randn_like(m.head.weight) / m.head.weight.shape[1] ** 0.5)
        m.head.bias.copy_(0.05 * torch.randn_like(m.head.bias))
    return m.train()


def text_tower():
    cfg = CLIPTextConfig(vocab_size=V, hidden_size=C, intermediate_size=4 * C, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=T, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, projection_dim=E, bos_token_id=V - 2, eos_token_id=V - 1,
                         pad_token_id=0, attention_dropout=0.0, dropout=0.0)
    cfg._attn_implementation = "eager"
    torch.manual_seed(2)
    m = CLIPTextModelWithProjection(cfg).float()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:  # matrices: activations O(1)
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    return m.train()   # no dropout in the config: train mode is deterministic


def round_to_f16(module):
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())


def batches():
    g = torch.Generator().manual_seed(4)
    out = []
    for k in range(STEPS):
        images = torch.randn(B, 3, S, S, generator=g).half().float()
        ids = torch.zeros(B, T, dtype=torch.int32)            # padding 0 after EOT
        lengths = torch.randint(3, T + 1, (B,), generator=g)
        lengths[k % B] = T                                     # one row fills the context
        for b in range(B):
            n = int(lengths[b])
            ids[b, 0] = V - 2                                  # SOT-like start
            ids[b, 1:n - 1] = torch.randint(1, V - 2, (n - 2,), generator=g, dtype=torch.int32)
            ids[b, n - 1] = V - 1                              # EOT = eos_token_id
        out.append((images, ids))
    return out


def clip_loss(img_emb, txt_emb, logit_scale):
    """open_clip ClipLoss (world size 1) on CLIP.forward's normalised features."""
    ni, nt = F.normalize(img_emb, dim=-1), F.normalize(txt_emb, dim=-1)
    scale = logit_scale.exp()
    logits_per_image = scale * ni @ nt.T
    logits_per_text = scale * nt @ ni.T
    labels = torch.arange(img_emb.shape[0])
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def main():
    torch.set_num_threads(1)
    visual, text = image_tower(), text_tower()
    round_to_f16(visual)
    round_to_f16(text)
    logit_scale = torch.nn.Parameter(torch.tensor(SCALE_INIT).half().float())

    # named parameters of the three groups: (prefix, own name, tensor)
    named = [("visual.", n, p) for n, p in visual.named_parameters()] + \
            [("text.", n, p) for n, p in text.named_parameters()] + [("", "logit_scale", logit_scale)]
    decay = [p for _, n, p in named if decays(n, p.ndim)]
    no_decay = [p for _, n, p in named if not decays(n, p.ndim)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=BASE_LR, betas=BETAS, eps=EPS, foreach=False)

    d = os.path.join(OUT, "text_hf")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(d)
    text.save_pretrained(d, safe_serialization=True)
    # the names the HF file holds are the state dict's; the C tower registers the same ones
    hf_names = sorted(k for k in text.state_dict() if not k.endswith("position_ids"))
    print("text state dict names (%d):" % len(hf_names), ", ".join(hf_names))

    init = {}
    for prefix, module in (("visual.", visual), ("text.", text)):
        for k, v in module.state_dict().items():
            if k.endswith("position_ids"):
                continue
            v = v.detach().clone().contiguous()
            init[prefix + k] = v.half() if v.is_floating_point() else v
    init["logit_scale"] = logit_scale.detach().clone().half()
    save_file(init, os.path.join(OUT, "init.safetensors"),
              metadata={"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__})

    data = batches()
    save_file({**{f"images_{k}": im.half() for k, (im, _) in enumerate(data)},
               **{f"ids_{k}": ids for k, (_, ids) in enumerate(data)}},
              os.path.join(OUT, "batches.safetensors"), metadata={"B": str(B), "S": str(S), "T": str(T)})

    losses, lrs, norms, expected = [], [], [], {}
    for k, (images, ids) in enumerate(data):
        opt.zero_grad(set_to_none=True)
        img_emb = visual(images)
        txt_emb = text(input_ids=ids.long()).text_embeds
        loss = clip_loss(img_emb, txt_emb, logit_scale)
        loss.backward()
        if k == 0:
            for prefix, n, p in named:
                expected["grad." + prefix + n] = p.grad.detach().clone().contiguous()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, _, p in named], max_norm=CLIP)))
        lr = cosine_lr(k)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        with torch.no_grad():
            logit_scale.clamp_(0, SCALE_MAX)
        losses.append(float(loss))
        lrs.append(lr)
        print(f"step {k + 1}: loss {float(loss):.7f}  lr {lr:.3e}  grad norm {norms[-1]:.5f}  "
              f"logit_scale {float(logit_scale):.6f}")
    expected["loss"] = torch.tensor(losses, dtype=torch.float32)
    expected["lr"] = torch.tensor(lrs, dtype=torch.float64)
    expected["grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    expected["after.logit_scale"] = logit_scale.detach().clone()
    for k, v in visual.state_dict().items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            expected["after.visual." + k] = v.detach().clone().contiguous()
    save_file(expected, os.path.join(OUT, "expected.safetensors"),
              metadata={"torch": torch.__version__, "E": str(E), "base_lr": str(BASE_LR), "warmup": str(WARMUP),
                        "steps": str(STEPS), "wd": str(WD), "betas": "0.9,0.98", "eps": str(EPS),
                        "grad_clip": str(CLIP)})
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
