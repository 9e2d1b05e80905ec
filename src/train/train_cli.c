/* clipgrid train / clipgrid eval — command lines. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/log.h"
#include "train/trainer.h"

static const char train_usage[] =
"usage: clipgrid train --image-encoder NAME --text-encoder NAME --out DIR [options]\n"
"\n"
"Train one CLIP configuration (a StarNet image tower and a text tower) on the CPU.\n"
"\n"
"model:\n"
"  --image-encoder NAME     starnet_s050 ... starnet_s4 (clipgrid models lists them)\n"
"  --text-encoder NAME      clip:tiny, bert:tiny, clip:ViT-B/32, bert-base-chinese\n"
"  --text-pretrained DIR    start the text tower from a Hugging Face model directory\n"
"  --image-pretrained FILE  start the image tower from a timm StarNet safetensors file\n"
"  --freeze-text            keep the text tower fixed (LiT)\n"
"  --vocab FILE             tokenizer vocabulary (default: learned from the captions, or the pretrained dir's)\n"
"  --vocab-size N           size of the learned vocabulary (default 1024)\n"
"  --embed-dim N            width of the joint embedding (default 512)\n"
"  --context-length N       tokens per caption (default: 77 CLIP, 52 BERT)\n"
"  --drop-path F            StarNet stochastic depth rate (default 0)\n"
"data:\n"
"  --data SPEC              fmnist:train (default), fmnist:test, a .csv/.tsv or .jsonl manifest, or\n"
"                           WebDataset shards 'dir/data-{000000..000099}.tar' (docs/data.md)\n"
"  --eval-data SPEC         held-out set: zero-shot + retrieval on fmnist:test (the default with fmnist\n"
"                           data), retrieval on a manifest or shards; \"\" for none\n"
"  --dataset-type T         auto (default: from the suffix), fmnist, csv, jsonl, webdataset\n"
"  --csv-img-key K          manifest column with the image path (default filepath)\n"
"  --csv-caption-key K      manifest column with the caption (default title)\n"
"  --csv-separator C        ',' or '\\t' (default: tab for .tsv, comma otherwise)\n"
"  --image-tsv FILE         Chinese-CLIP: the id<TAB>base64 images of a {text_id,text,image_ids} JSONL\n"
"  --eval-image-tsv FILE    the same for --eval-data\n"
"  --workers N              image decode threads (default 2)\n"
"  --shuffle-buffer N       samples shuffled in memory when reading shards (default 1000)\n"
"  --hflip                  random horizontal flips (manifests and shards)\n"
"  --image-size N           pixels per side (default 64)\n"
"schedule:\n"
"  --steps N | --epochs F   length of the run (default 1 epoch)\n"
"  --batch-size N           images per step (default 64)\n"
"  --lr F --wd F            AdamW learning rate (5e-4) and weight decay (0.2)\n"
"  --beta1 F --beta2 F --eps F   AdamW (0.9, 0.98, 1e-6)\n"
"  --warmup N               linear warmup steps before the cosine decay (default min(500, steps/10))\n"
"  --grad-clip F            clip the global gradient norm (default 1; 0 disables)\n"
"  --accum-steps N          split each batch into N micro-batches (the contrastive loss still sees the whole batch)\n"
"output:\n"
"  --out DIR                the run directory (config, metrics, checkpoints, result.json)\n"
"  --save-every N           checkpoint every N steps (default 1000, and at the end)\n"
"  --eval-every N           evaluate every N steps (default: only at the end)\n"
"  --eval-samples N         images of the eval set used for zero-shot (default 10000)\n"
"  --retrieval-samples N    image-caption pairs for retrieval R@k (default 1000)\n"
"  --log-every N            metrics every N steps (default 10)\n"
"  --resume                 continue the run in --out from checkpoints/latest\n"
"other:\n"
"  --seed N                 (default 0)   --threads N   (default: all cores)\n"
"  --device cpu|cuda        where steps run (default cpu; cuda loads libclipgrid-cuda.so, see docs/cuda.md)\n"
"  --precision fp32|bf16    default bf16 on cuda (fp32 master weights), fp32 on cpu (the CPU is fp32 only)\n";

static int num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi)
        return cg_error_set(CG_ERR_USAGE, "%s: \"%s\" is not a number in [%g, %g]", flag, v, lo, hi);
    *out = d;
    return CG_OK;
}

enum { T_IMG = 256, T_TXT, T_DATA, T_EVALDATA, T_OUT, T_DEVICE, T_TPRE, T_IPRE, T_FREEZE, T_VOCAB, T_VOCABSZ, T_STEPS,
       T_EPOCHS, T_BATCH, T_LR, T_WD, T_WARMUP, T_SIZE, T_SAVE, T_EVAL, T_EVALN, T_LOG, T_RESUME, T_SEED, T_THREADS,
       T_CTX, T_EMB, T_B1, T_B2, T_EPS, T_CLIP, T_ACCUM, T_DROP, T_PREC, T_HELP, T_DTYPE, T_IMGKEY, T_CAPKEY, T_SEP,
       T_TSV, T_EVALTSV, T_WORKERS, T_SHUFBUF, T_HFLIP, T_RETR };

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"image-encoder", 1, 0, T_IMG}, {"text-encoder", 1, 0, T_TXT}, {"data", 1, 0, T_DATA},
        {"eval-data", 1, 0, T_EVALDATA}, {"out", 1, 0, T_OUT}, {"device", 1, 0, T_DEVICE},
        {"text-pretrained", 1, 0, T_TPRE}, {"image-pretrained", 1, 0, T_IPRE}, {"freeze-text", 0, 0, T_FREEZE},
        {"vocab", 1, 0, T_VOCAB}, {"vocab-size", 1, 0, T_VOCABSZ}, {"steps", 1, 0, T_STEPS}, {"epochs", 1, 0, T_EPOCHS},
        {"batch-size", 1, 0, T_BATCH}, {"lr", 1, 0, T_LR}, {"wd", 1, 0, T_WD}, {"warmup", 1, 0, T_WARMUP},
        {"image-size", 1, 0, T_SIZE}, {"save-every", 1, 0, T_SAVE}, {"eval-every", 1, 0, T_EVAL},
        {"eval-samples", 1, 0, T_EVALN}, {"log-every", 1, 0, T_LOG}, {"resume", 0, 0, T_RESUME}, {"seed", 1, 0, T_SEED},
        {"threads", 1, 0, T_THREADS}, {"context-length", 1, 0, T_CTX}, {"embed-dim", 1, 0, T_EMB},
        {"beta1", 1, 0, T_B1}, {"beta2", 1, 0, T_B2}, {"eps", 1, 0, T_EPS}, {"grad-clip", 1, 0, T_CLIP},
        {"accum-steps", 1, 0, T_ACCUM}, {"drop-path", 1, 0, T_DROP}, {"precision", 1, 0, T_PREC},
        {"dataset-type", 1, 0, T_DTYPE}, {"csv-img-key", 1, 0, T_IMGKEY}, {"csv-caption-key", 1, 0, T_CAPKEY},
        {"csv-separator", 1, 0, T_SEP}, {"image-tsv", 1, 0, T_TSV}, {"eval-image-tsv", 1, 0, T_EVALTSV},
        {"workers", 1, 0, T_WORKERS}, {"shuffle-buffer", 1, 0, T_SHUFBUF}, {"hflip", 0, 0, T_HFLIP},
        {"retrieval-samples", 1, 0, T_RETR}, {"help", 0, 0, T_HELP}, {0, 0, 0, 0}};
    train_options o;
    train_options_defaults(&o);
    optind = 1;
    opterr = 0;
    int c, rc = CG_OK;
    double v = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *flag = argv[optind - 1];
        switch (c) {
        case T_IMG: o.image_encoder = optarg; break;
        case T_TXT: o.text_encoder = optarg; break;
        case T_DATA: o.data = optarg; break;
        case T_EVALDATA: o.eval_data = optarg; break;
        case T_OUT: o.out = optarg; break;
        case T_DEVICE:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) rc = cg_error_set(CG_ERR_USAGE, "--device %s: cpu or cuda", optarg);
            o.device = optarg;
            break;
        case T_TPRE: o.text_pretrained = optarg; break;
        case T_IPRE: o.image_pretrained = optarg; break;
        case T_FREEZE: o.freeze_text = 1; break;
        case T_VOCAB: o.vocab = optarg; break;
        case T_VOCABSZ: if (!(rc = num("--vocab-size", optarg, 16, 1e6, &v))) o.vocab_size = (int)v; break;
        case T_STEPS: if (!(rc = num("--steps", optarg, 1, 1e12, &v))) o.steps = (int64_t)v; break;
        case T_EPOCHS: rc = num("--epochs", optarg, 1e-6, 1e6, &o.epochs); break;
        case T_BATCH: if (!(rc = num("--batch-size", optarg, 2, 1 << 20, &v))) o.batch_size = (int)v; break;
        case T_LR: rc = num("--lr", optarg, 0, 1e9, &o.lr); break;
        case T_WD: rc = num("--wd", optarg, 0, 10, &o.wd); break;
        case T_WARMUP: if (!(rc = num("--warmup", optarg, 0, 1e12, &v))) o.warmup = (int64_t)v; break;
        case T_SIZE: if (!(rc = num("--image-size", optarg, 16, 1024, &v))) o.image_size = (int)v; break;
        case T_SAVE: if (!(rc = num("--save-every", optarg, 0, 1e12, &v))) o.save_every = (int64_t)v; break;
        case T_EVAL: if (!(rc = num("--eval-every", optarg, 0, 1e12, &v))) o.eval_every = (int64_t)v; break;
        case T_EVALN: if (!(rc = num("--eval-samples", optarg, 1, 1e9, &v))) o.eval_samples = (int)v; break;
        case T_LOG: if (!(rc = num("--log-every", optarg, 1, 1e12, &v))) o.log_every = (int64_t)v; break;
        case T_RESUME: o.resume = 1; break;
        case T_SEED: if (!(rc = num("--seed", optarg, 0, 1e18, &v))) o.seed = (uint64_t)v; break;
        case T_THREADS: if (!(rc = num("--threads", optarg, 1, 4096, &v))) o.threads = (int)v; break;
        case T_CTX: if (!(rc = num("--context-length", optarg, 2, 4096, &v))) o.context_length = (int)v; break;
        case T_EMB: if (!(rc = num("--embed-dim", optarg, 1, 1 << 16, &v))) o.embed_dim = (int)v; break;
        case T_B1: rc = num("--beta1", optarg, 0, 0.999999, &o.beta1); break;
        case T_B2: rc = num("--beta2", optarg, 0, 0.999999, &o.beta2); break;
        case T_EPS: rc = num("--eps", optarg, 0, 1, &o.eps); break;
        case T_CLIP: rc = num("--grad-clip", optarg, 0, 1e9, &o.grad_clip); break;
        case T_ACCUM: if (!(rc = num("--accum-steps", optarg, 1, 1e6, &v))) o.accum_steps = (int)v; break;
        case T_DROP: rc = num("--drop-path", optarg, 0, 0.99, &o.drop_path); break;
        case T_PREC:
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16")) rc = cg_error_set(CG_ERR_USAGE, "--precision %s: fp32 or bf16", optarg);
            o.precision = optarg;
            break;
        case T_DTYPE: o.dataset_type = optarg; break;
        case T_IMGKEY: o.csv_img_key = optarg; break;
        case T_CAPKEY: o.csv_caption_key = optarg; break;
        case T_SEP:
            if (!strcmp(optarg, "\\t") || !strcmp(optarg, "\t") || !strcmp(optarg, "tab")) o.csv_separator = '\t';
            else if (!strcmp(optarg, ",")) o.csv_separator = ',';
            else rc = cg_error_set(CG_ERR_USAGE, "--csv-separator \"%s\": use ',' or '\\t'", optarg);
            break;
        case T_TSV: o.image_tsv = optarg; break;
        case T_EVALTSV: o.eval_image_tsv = optarg; break;
        case T_WORKERS: if (!(rc = num("--workers", optarg, 1, 1024, &v))) o.workers = (int)v; break;
        case T_SHUFBUF: if (!(rc = num("--shuffle-buffer", optarg, 1, 1e8, &v))) o.shuffle_buffer = (int)v; break;
        case T_HFLIP: o.hflip = 1; break;
        case T_RETR: if (!(rc = num("--retrieval-samples", optarg, 2, 1e6, &v))) o.retrieval_samples = (int)v; break;
        case 'h': case T_HELP: fputs(train_usage, stdout); return 0;
        case ':': rc = cg_error_set(CG_ERR_USAGE, "%s needs a value", flag); break;
        default: rc = cg_error_set(CG_ERR_USAGE, "unknown option \"%s\" (clipgrid train --help lists them)", flag);
        }
    }
    if (!rc && optind < argc) rc = cg_error_set(CG_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        return 2;
    }
    return train_run(&o);
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {{"checkpoint", 1, 0, 'c'}, {"data", 1, 0, 'd'}, {"step", 1, 0, 's'},
                                         {"eval-samples", 1, 0, 'n'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'},
                                         {"retrieval-samples", 1, 0, 'r'}, {"device", 1, 0, 'D'},
                                         {"precision", 1, 0, 'P'}, {"batch-size", 1, 0, 'b'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *data = "fmnist:test", *device = "cpu", *precision = NULL;
    double step = -1, samples = 10000, threads = 0, retrieval = 1000, batch = 64;
    optind = 1;
    opterr = 0;
    int c, rc = CG_OK;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': dir = optarg; break;
        case 'd': data = optarg; break;
        case 's': rc = num("--step", optarg, 0, 1e12, &step); break;
        case 'n': rc = num("--eval-samples", optarg, 1, 1e9, &samples); break;
        case 't': rc = num("--threads", optarg, 1, 4096, &threads); break;
        case 'r': rc = num("--retrieval-samples", optarg, 2, 1e6, &retrieval); break;
        case 'D':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) rc = cg_error_set(CG_ERR_USAGE, "--device %s: cpu or cuda", optarg);
            device = optarg;
            break;
        case 'P':
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16")) rc = cg_error_set(CG_ERR_USAGE, "--precision %s: fp32 or bf16", optarg);
            precision = optarg;
            break;
        case 'b': rc = num("--batch-size", optarg, 1, 1 << 20, &batch); break;
        case 'h':
            printf("usage: clipgrid eval --checkpoint RUN_DIR [--data SPEC] [--step N] [--eval-samples N]\n"
                   "                     [--retrieval-samples N] [--threads N]\n"
                   "                     [--device cpu|cuda] [--precision fp32|bf16] [--batch-size N]\n\n"
                   "Zero-shot top-1/top-5 (fmnist:test, the default) and retrieval R@1/5/10 (any --data: a manifest\n"
                   "or shards too, read with the run's --csv-* settings) of a `clipgrid train` run (its latest\n"
                   "checkpoint, or --step N), printed as JSON.\n"
                   "  --device cpu|cuda      where the encoders run (default cpu; cuda: docs/cuda.md)\n"
                   "  --precision fp32|bf16  default bf16 on cuda, fp32 on cpu\n"
                   "  --batch-size N         images or texts per device call on cuda (default 64)\n"
                   "Exit codes: 0 done, 2 bad input, 3 device unavailable, 4 data unreadable.\n");
            return 0;
        case ':': rc = cg_error_set(CG_ERR_USAGE, "%s needs a value", argv[optind - 1]); break;
        default: rc = cg_error_set(CG_ERR_USAGE, "unknown option \"%s\" (clipgrid eval --help)", argv[optind - 1]);
        }
    }
    if (!rc && !dir) rc = cg_error_set(CG_ERR_USAGE, "eval needs --checkpoint RUN_DIR");
    if (rc) {
        cg_log_error("%s", cg_error_message());
        return 2;
    }
    return eval_run(dir, data, (int64_t)step, (int)samples, (int)retrieval, (int)threads, device, precision,
                    (int)batch);
}
