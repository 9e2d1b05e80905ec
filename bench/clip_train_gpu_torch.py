"""PyTorch side of the GPU training benchmark (issue 7): the CLIP configurations clipgrid trains,
built from timm and transformers, timed in eager mode and under torch.compile.

Model (mirrors src/models/clip_model.h, starnet.h, text_transformer.h, zoo.c):
  image  timm StarNet, num_classes=0, + Linear(C_last -> 512) with bias (clipgrid's `head.`)
  text   clip:*  CLIPTextModelWithProjection (pre-LN, causal, QuickGELU, no attention mask),
                 pooled at the EOT token = argmax of the ids (eos_token_id=2 selects HF's legacy
                 argmax path, which is clipgrid's eos_id -1), final LN, bias-free text_projection
         bert*   BertModel without pooler (dropout 0, like clipgrid's tower), key mask ids != 0,
                 last_hidden_state[:, 0] ([CLS], no pooler, no tanh) @ bias-free Linear(768 -> 512)
  loss   open_clip ClipLoss: L2 normalise, exp(logit_scale) * img @ txt^T, symmetric CE;
         logit_scale starts at ln(1/0.07), clamped to [0, ln 100] after the step
  step   zero_grad, forward, backward, clip_grad_norm_(1.0), AdamW (lr 5e-4 constant, wd 0.2 on
         clipgrid's decay set, betas 0.9/0.98, eps 1e-6; fused on CUDA), clamp
Inputs are random and made on the device once (data loading is outside the measurement):
images N(0,1) [B, 3, S, S]; CLIP ids SOT 49406, random body, EOT 49407 at a random length, 0
after; BERT ids [CLS] 101, random body, [SEP] 102 at a random length, [PAD] 0 after; context 77
(CLIP) / 52 (Chinese-CLIP's BERT), the zoo's defaults.

Precision: bf16 autocast with fp32 parameters, gradients and AdamW state (master weights); the
loss in fp32. cudnn.benchmark on. Modes: eager, and compile = torch.compile (default mode) of the
image tower and of the text tower separately (the loss and the optimizer stay eager); the first
step's wall time is reported as compile_s.

Measured per (config, mode): images/s over --steps timed steps after --warmup steps
(torch.cuda.synchronize around the timed loop), peak memory (max_memory_allocated, reset per
run), and the text tower alone (forward + backward of a sum of its embeddings, no optimizer) for
its MFU: 6 * N * tokens / time / peak, N = the tower's parameters without the embedding tables
(token, position, token type), projection included; peak = the card's dense bf16 peak from its
name (H100 SXM and H200: 989 TFLOP/s; --peak-tflops overrides). In eager mode one extra step
under torch.utils.flop_counter.FlopCounterMode counts the FLOPs the step really runs (matmuls,
convolutions, attention), giving mfu_step for the whole model and mfu_text_counted for the text
tower (its attention products included, which 6ND leaves out).

One JSON object per (config, mode) to --out (JSON lines, flushed as each finishes, so a run cut
short by a timeout keeps what it measured), a table at the end. Out-of-memory and other errors are
recorded for that (config, mode) and the run continues. --time-budget skips what would start
after that many seconds. Runs: the eager ones first, then the compiled ones.

  python3 bench/clip_train_gpu_torch.py --out /tmp/torch_gpu_bench.jsonl
  python bench/clip_train_gpu_torch.py --device cpu --batch-size 4 --image-size 64 --steps 2 --warmup 1
"""
import argparse
import datetime
import gc
import json
import math
import signal
import sys
import time
import traceback

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModelWithProjection

# src/models/zoo.c: name -> (kind, vocab, context, max_positions, width, layers, heads, mlp, ln_eps)
TEXT_ZOO = {
    "clip:ViT-B/32": ("clip", 49408, 77, 77, 512, 12, 8, 2048, 1e-5),
    "bert-base-chinese": ("bert", 21128, 52, 512, 768, 12, 12, 3072, 1e-12),
    "clip:tiny": ("clip", 49408, 77, 77, 128, 2, 2, 512, 1e-5),
    "bert:tiny": ("bert", 21128, 52, 512, 128, 2, 2, 512, 1e-12),
}
EMBED_DIM = 512                       # zoo.c embed_dim of every text tower; clipgrid's --embed-dim default
LOGIT_SCALE_INIT = math.log(1 / 0.07)  # CLIP_LOGIT_SCALE_INIT
LOGIT_SCALE_MAX = math.log(100)        # CLIP_LOGIT_SCALE_MAX
DECAY_EXEMPT = ("bn", "ln", "norm", "bias", "logit_scale", "position", "token_type")   # train/adamw.c
DEFAULT_CONFIGS = "starnet_s1:clip:ViT-B/32,starnet_s4:bert-base-chinese"


def dense_bf16_peak(name):
    """(peak FLOP/s, how it was chosen) for a CUDA device name; None when unknown."""
    n = name.upper()
    if "H200" in n:   # H200 SXM (and GH200); H200 NVL is lower
        return (835e12, "H200 NVL dense bf16 835 TFLOP/s") if "NVL" in n else (989e12, "H200 dense bf16 989 TFLOP/s")
    if "H100" in n:
        if "PCIE" in n:
            return 756e12, "H100 PCIe dense bf16 756 TFLOP/s"
        if "NVL" in n:
            return 835e12, "H100 NVL dense bf16 835 TFLOP/s"
        return 989e12, "H100 SXM dense bf16 989 TFLOP/s"
    if "A100" in n:
        return 312e12, "A100 dense bf16 312 TFLOP/s"
    return None, "unknown card: no MFU (give --peak-tflops)"


class Killed(Exception):
    pass


TERMINATED = []   # set by the handler: torch.compile may wrap the exception it raises into its own


def on_term(signum, frame):
    TERMINATED.append("signal %d (time limit)" % signum)
    raise Killed(TERMINATED[0])


class TextTower(nn.Module):
    """ids [B, T] -> text embedding [B, 512], pooled as clipgrid's cg_text_forward does."""

    def __init__(self, name):
        super().__init__()
        kind, vocab, ctx, maxpos, width, layers, heads, mlp, eps = TEXT_ZOO[name]
        self.kind, self.context, self.vocab = kind, ctx, vocab
        if kind == "clip":
            cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
                                 num_attention_heads=heads, max_position_embeddings=maxpos, hidden_act="quick_gelu",
                                 layer_norm_eps=eps, projection_dim=EMBED_DIM, attention_dropout=0.0,
                                 eos_token_id=2)   # 2: HF's argmax(ids) pooling = OpenAI's / clipgrid's eos_id -1
            self.model = CLIPTextModelWithProjection(cfg)
        else:
            cfg = BertConfig(vocab_size=vocab, hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
                             num_attention_heads=heads, max_position_embeddings=maxpos, type_vocab_size=2,
                             layer_norm_eps=eps, hidden_act="gelu", hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0, pad_token_id=0)
            self.model = BertModel(cfg, add_pooling_layer=False)
            self.text_projection = nn.Linear(width, EMBED_DIM, bias=False)
        self.attn_implementation = getattr(cfg, "_attn_implementation", None)

    def forward(self, ids):
        if self.kind == "clip":
            return self.model(input_ids=ids).text_embeds
        h = self.model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
        return self.text_projection(h[:, 0])

    def flop_params(self):
        """Parameters that enter a matmul: everything but the embedding tables."""
        emb = ("token_embedding", "position_embedding", "word_embeddings", "position_embeddings",
               "token_type_embeddings")
        return sum(p.numel() for n, p in self.named_parameters() if not any(e in n for e in emb))


class ImageTower(nn.Module):
    """timm StarNet without its classifier + Linear(C_last -> 512): clipgrid's StarNet with head."""

    def __init__(self, name):
        super().__init__()
        self.trunk = timm.create_model(name, num_classes=0, drop_path_rate=0.0)
        self.head = nn.Linear(self.trunk.num_features, EMBED_DIM)
        nn.init.trunc_normal_(self.head.weight, std=0.02, a=-2.0, b=2.0)   # starnet.c / timm _init_weights
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.trunk(x))


def random_ids(kind, B, T, vocab, device, gen):
    lens = torch.randint(max(2, T // 4), T + 1, (B,), generator=gen)
    if kind == "clip":
        body = torch.randint(1, vocab - 2, (B, T), generator=gen)   # below SOT 49406 / EOT 49407
        sot, eot, pad = vocab - 2, vocab - 1, 0
    else:
        body = torch.randint(106, vocab, (B, T), generator=gen)      # past [CLS] 101 / [SEP] 102 / [MASK] 103
        sot, eot, pad = 101, 102, 0
    pos = torch.arange(T).unsqueeze(0)
    ids = torch.where(pos < lens.unsqueeze(1), body, torch.full_like(body, pad))
    ids[:, 0] = sot
    ids[torch.arange(B), lens - 1] = eot
    return ids.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(a, image_name, text_name, mode, device, peak, flops_cache, log):
    """Build, warm up, time; returns the result row (status 'ok')."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    B, S = a.batch_size, a.image_size
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    image = ImageTower(image_name).to(device)
    text = TextTower(text_name).to(device)
    if a.channels_last:
        image = image.to(memory_format=torch.channels_last)
    logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT, device=device))
    image.train()
    text.train()
    named = [("visual." + n, p) for n, p in image.named_parameters()] + \
            [("text." + n, p) for n, p in text.named_parameters()] + [("logit_scale", logit_scale)]
    params = [p for _, p in named]
    decay = [p for n, p in named if p.ndim >= 2 and not any(e in n for e in DECAY_EXEMPT)]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and not any(e in n for e in DECAY_EXEMPT))]
    opt_kw = dict(lr=a.lr, betas=(0.9, 0.98), eps=1e-6)
    impl = a.adamw
    if impl == "auto":
        impl = "fused" if device.type == "cuda" else "foreach"
    if impl == "fused":
        opt_kw["fused"] = True
    elif impl == "foreach":
        opt_kw["foreach"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": no_decay, "weight_decay": 0.0}],
                            **opt_kw)

    x = torch.randn(B, 3, S, S, generator=gen).to(device)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    T = a.context or text.context
    ids = random_ids(text.kind, B, T, text.vocab, device, gen)
    labels = torch.arange(B, device=device)

    enc_img, enc_txt = image, text
    if mode == "compile":
        enc_img, enc_txt = torch.compile(image), torch.compile(text)
    bf16 = a.precision == "bf16"

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            fi = enc_img(x)
            ft = enc_txt(ids)
        fi = F.normalize(fi.float(), dim=-1)
        ft = F.normalize(ft.float(), dim=-1)
        logits = logit_scale.exp() * fi @ ft.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
        opt.step()
        with torch.no_grad():
            logit_scale.clamp_(0, LOGIT_SCALE_MAX)
        return loss.detach()

    def text_step():
        for p in text.parameters():
            p.grad = None
        with autocast():
            e = enc_txt(ids)
        e.float().sum().backward()

    row = {"attn_implementation": text.attn_implementation, "context": T, "adamw": impl,
           "image_params": sum(p.numel() for p in image.parameters()),
           "text_params": sum(p.numel() for p in text.parameters()), "text_flop_params": text.flop_params()}

    # first step: compile (or cuDNN autotuning) + one step
    sync(device)
    t0 = time.perf_counter()
    loss0 = step()
    sync(device)
    first_s = time.perf_counter() - t0
    row["first_step_s"] = round(first_s, 3)
    if mode == "compile":
        row["compile_s"] = round(first_s, 2)
    log("  first step %.2f s%s, loss %.4f" % (first_s, " (includes compilation)" if mode == "compile" else "",
                                              loss0.item()))
    for _ in range(max(0, a.warmup - 1)):
        step()
    # FLOPs the step really runs, counted once per config in eager mode (one extra step)
    key = (image_name, text_name, B, S, T)
    if mode == "eager" and a.count_flops and key not in flops_cache:
        try:
            from torch.utils.flop_counter import FlopCounterMode
            fc = FlopCounterMode(display=False)
            with fc:
                step()
            step_flops = fc.get_total_flops()
            fc = FlopCounterMode(display=False)
            with fc:
                text_step()
            flops_cache[key] = (step_flops, fc.get_total_flops())
        except Exception as e:   # the counter is a nicety: never lose the timing for it
            log("  flop counter failed: %s" % e)
            flops_cache[key] = (None, None)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync(device)
    dt = time.perf_counter() - t0
    loss_last = loss.item()
    if not math.isfinite(loss_last):
        raise RuntimeError("non-finite loss %r" % loss_last)
    row.update(images_per_s=round(B * a.steps / dt, 2), step_ms=round(1000 * dt / a.steps, 3),
               loss_first=round(loss0.item(), 5), loss_last=round(loss_last, 5))

    # the text tower alone: forward + backward, for its MFU
    for _ in range(a.text_warmup):
        text_step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(a.text_steps):
        text_step()
    sync(device)
    tdt = (time.perf_counter() - t0) / max(1, a.text_steps)
    tokens = B * T
    f6nd = 6 * row["text_flop_params"] * tokens
    row.update(text_tokens=tokens, text_fwd_bwd_ms=round(1000 * tdt, 3), text_flops_6nd=f6nd,
               text_tflops_6nd=round(f6nd / tdt / 1e12, 2))
    row["mfu_text"] = round(f6nd / tdt / peak, 4) if peak else None
    step_flops, text_flops = flops_cache.get(key, (None, None))
    row["flops_step_counted"] = step_flops
    row["flops_text_fwd_bwd_counted"] = text_flops
    row["mfu_step"] = round(step_flops / (dt / a.steps) / peak, 4) if (peak and step_flops) else None
    row["mfu_text_counted"] = round(text_flops / tdt / peak, 4) if (peak and text_flops) else None
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
    else:
        row["peak_mem_gib"] = None
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated IMAGE:TEXT pairs (text: %s); default %s" % (", ".join(TEXT_ZOO), DEFAULT_CONFIGS))
    p.add_argument("--modes", default=None,
                   help="comma-separated: eager, compile (default: both on cuda, eager on cpu)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--context", type=int, default=0, help="token positions (0: the tower's, 77 CLIP / 52 BERT)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per config and mode")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (the first one compiles)")
    p.add_argument("--text-steps", type=int, default=10, help="timed text-tower forward+backward steps (MFU)")
    p.add_argument("--text-warmup", type=int, default=3)
    p.add_argument("--precision", choices=["bf16", "fp32"], default=None,
                   help="bf16 = autocast with fp32 master weights (default on cuda); fp32 (default on cpu)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip_grad_norm_ max norm (clipgrid's default 1; 0 off)")
    p.add_argument("--adamw", choices=["auto", "fused", "foreach", "default"], default="auto",
                   help="AdamW implementation (auto: fused on cuda, foreach on cpu)")
    p.add_argument("--channels-last", action="store_true", help="images and StarNet in channels_last")
    p.add_argument("--no-count-flops", dest="count_flops", action="store_false",
                   help="skip the FlopCounterMode step (mfu_step)")
    p.add_argument("--peak-tflops", type=float, default=0, help="dense bf16 peak of the card (0: from its name)")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds: (config, mode) runs that would start later are skipped (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    p.add_argument("--out", default=None, help="JSON lines file (appended to)")
    a = p.parse_args()

    t_start = time.perf_counter()
    signal.signal(signal.SIGTERM, on_term)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("clip_train_gpu_torch: no CUDA device (use --device cpu to try it on the CPU)")
    if a.precision is None:
        a.precision = "bf16" if device.type == "cuda" else "fp32"
    configs = []
    for c in a.configs.split(","):
        img, sep, txt = c.strip().partition(":")
        if not sep or txt not in TEXT_ZOO:
            sys.exit("clip_train_gpu_torch: bad config %r: IMAGE:TEXT, TEXT one of %s" % (c, ", ".join(TEXT_ZOO)))
        configs.append((img, txt))
    if a.modes is None:
        a.modes = "eager,compile" if device.type == "cuda" else "eager"
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("eager", "compile"):
            sys.exit("clip_train_gpu_torch: unknown mode %r (eager, compile)" % m)

    if device.type == "cuda":
        dev_name = torch.cuda.get_device_name(device)
        torch.backends.cudnn.benchmark = True
    else:
        import platform
        dev_name = "cpu %s, %d threads" % (platform.processor() or platform.machine(), torch.get_num_threads())
    if a.peak_tflops > 0:
        peak, peak_src = a.peak_tflops * 1e12, "--peak-tflops %g" % a.peak_tflops
    elif device.type == "cuda":
        peak, peak_src = dense_bf16_peak(dev_name)
    else:
        peak, peak_src = None, "cpu: no MFU"
    if peak and a.precision != "bf16":
        peak_src += " (a bf16 peak, but this run is %s)" % a.precision

    def log(msg):
        print("[torch-bench %6.1f s] %s" % (time.perf_counter() - t_start, msg), flush=True)

    log("%s; torch %s, timm %s, transformers %s; peak: %s" % (dev_name, torch.__version__, timm.__version__,
                                                             transformers.__version__, peak_src))
    log("batch %d, %d px, %s, %d warmup + %d timed steps; configs %s; modes %s" % (
        a.batch_size, a.image_size, a.precision, a.warmup, a.steps,
        ", ".join("%s x %s" % c for c in configs), ", ".join(modes)))
    out = open(a.out, "a") if a.out else None
    base = {"framework": "pytorch", "torch": torch.__version__, "timm": timm.__version__,
            "transformers": transformers.__version__, "device": dev_name, "peak_tflops": peak / 1e12 if peak else None,
            "peak_source": peak_src, "batch": a.batch_size, "image_size": a.image_size, "precision": a.precision,
            "steps": a.steps, "warmup": a.warmup, "channels_last": a.channels_last, "grad_clip": a.grad_clip,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    rows, flops_cache, killed = [], {}, None
    for mode in modes:              # eager for every config first: the cheap, sure numbers
        for img, txt in configs:
            row = dict(base, image=img, text=txt, mode=mode)
            elapsed = time.perf_counter() - t_start
            if killed or (a.time_budget and elapsed > a.time_budget):
                row.update(status="skipped", error="time limit" if killed else
                           "time budget %.0f s spent (%.0f s)" % (a.time_budget, elapsed))
                log("%s x %s, %s: skipped (%s)" % (img, txt, mode, row["error"]))
            else:
                log("%s x %s, %s ..." % (img, txt, mode))
                t0 = time.perf_counter()
                try:
                    row.update(run_one(a, img, txt, mode, device, peak, flops_cache, log))
                    row["status"] = "ok"
                    log("  %.1f images/s, %.1f ms/step, peak %s GiB, text fwd+bwd %.1f ms (%s TFLOP/s 6ND%s)" % (
                        row["images_per_s"], row["step_ms"], row["peak_mem_gib"], row["text_fwd_bwd_ms"],
                        row["text_tflops_6nd"], ", MFU %.1f%%" % (100 * row["mfu_text"]) if row["mfu_text"] else ""))
                except Killed as e:
                    killed = str(e)
                    row.update(status="killed", error=killed)
                    log("  killed: %s" % killed)
                except torch.cuda.OutOfMemoryError as e:
                    row.update(status="oom", error=str(e).split("\n")[0][:300])
                    log("  out of memory: %s" % row["error"])
                except Exception as e:
                    if TERMINATED:
                        killed = TERMINATED[0]
                        row.update(status="killed", error=killed)
                        log("  killed: %s" % killed)
                    else:
                        row.update(status="error", error=("%s: %s" % (type(e).__name__, e)).split("\n")[0][:300])
                        log("  error: %s" % row["error"])
                        traceback.print_exc(limit=4)
                row["wall_s"] = round(time.perf_counter() - t0, 2)
                if device.type == "cuda" and row["status"] != "ok":
                    row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
            rows.append(row)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
            if mode == "compile":
                torch._dynamo.reset()
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    print()
    print("PyTorch %s on %s (%s, batch %d, %d px)" % (torch.__version__, dev_name, a.precision, a.batch_size,
                                                     a.image_size))
    print("%-32s %-8s %-8s %10s %9s %9s %10s %9s %9s" % ("config", "mode", "status", "images/s", "ms/step",
                                                          "peak GiB", "compile s", "text MFU", "step MFU"))
    for r in rows:
        def f(k, fmt, scale=1):
            v = r.get(k)
            return fmt % (v * scale) if isinstance(v, (int, float)) else "-"
        print("%-32s %-8s %-8s %10s %9s %9s %10s %9s %9s" % (
            "%s x %s" % (r["image"], r["text"]), r["mode"], r["status"], f("images_per_s", "%.1f"),
            f("step_ms", "%.1f"), f("peak_mem_gib", "%.2f"), f("compile_s", "%.1f"),
            f("mfu_text", "%.1f%%", 100), f("mfu_step", "%.1f%%", 100)))
    if out:
        out.close()
        print("wrote %s" % a.out)
    if killed:
        sys.exit(124)
    sys.exit(0 if all(r["status"] in ("ok", "skipped") for r in rows) else 1)


if __name__ == "__main__":
    main()
