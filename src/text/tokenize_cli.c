/* tokenize_cli.c — `clipgrid tokenize`: show the ids and pieces a text encoder's tokenizer gives,
 * or learn a vocabulary from captions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "core/fileio.h"
#include "core/log.h"
#include "text/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: clipgrid tokenize --text-encoder NAME [--vocab FILE | --text-pretrained DIR] [options] TEXT...\n"
            "       clipgrid tokenize --text-encoder NAME --learn CAPTIONS.txt --vocab-size N --out FILE\n"
            "\n"
            "Prints the token ids and pieces of each TEXT (\"-\" reads one text per line from stdin).\n"
            "\n"
            "  --text-encoder NAME      clip:* (CLIP byte-level BPE, context 77) or bert* (WordPiece, context 52)\n"
            "  --vocab FILE             CLIP merges (bpe_simple_vocab_16e6.txt.gz, merges.txt) or BERT vocab.txt\n"
            "  --text-pretrained DIR    Hugging Face model directory (vocab.txt, or vocab.json + merges.txt)\n"
            "  --context N              row length (default: the encoder's)\n"
            "  --lower-case | --cased   WordPiece: lower-case and strip accents (default for bert*) or not\n"
            "  --max-chars-per-word N   WordPiece: longer words become [UNK] (default 200)\n"
            "  --pad                    print the whole padded row\n"
            "  --json                   one JSON object per text\n"
            "  --learn FILE             learn a vocabulary from FILE (one caption per line) and write --out\n"
            "  --vocab-size N           size of the learned vocabulary\n"
            "  --out FILE               where the learned vocabulary goes (CLIP: merges, .gz compresses)\n");
}

typedef struct {
    const text_tokenizer *tok;
    int context, pad, json;
} show_opts;

static void show(const show_opts *o, const char *text, size_t len) {
    int32_t *ids = cg_xmalloc((size_t)o->context * sizeof *ids);
    int truncated = 0;
    int n = text_tokenizer_encode_ex(o->tok, text, len, ids, o->context, &truncated);
    int shown = o->pad ? o->context : n;
    if (o->json) {
        cJSON *obj = cJSON_CreateObject();
        char *t = cg_xmalloc(len + 1);
        memcpy(t, text, len);
        t[len] = 0;
        cJSON_AddStringToObject(obj, "text", t);
        free(t);
        cJSON *a = cJSON_AddArrayToObject(obj, "ids"), *p = cJSON_AddArrayToObject(obj, "pieces");
        for (int i = 0; i < shown; i++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            const char *s = text_tokenizer_piece(o->tok, ids[i]);
            cJSON_AddItemToArray(p, cJSON_CreateString(s ? s : ""));
        }
        cJSON_AddNumberToObject(obj, "length", n);
        cJSON_AddNumberToObject(obj, "context", o->context);
        cJSON_AddBoolToObject(obj, "truncated", truncated);
        char *s = cJSON_PrintUnformatted(obj);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(obj);
    } else {
        printf("text:   %.*s\nids:   ", (int)len, text);
        for (int i = 0; i < shown; i++) printf(" %d", ids[i]);
        printf("\npieces:");
        for (int i = 0; i < shown; i++) {
            const char *s = text_tokenizer_piece(o->tok, ids[i]);
            printf(" %s", s && *s ? s : "?");
        }
        printf("\nlength: %d of %d%s\n", n, o->context, truncated ? " (truncated: the end token replaces the rest)" : "");
    }
    free(ids);
}

/* Lines of a file (or stdin for "-"), without their line ends; empty lines skipped. */
static char **read_lines(const char *path, size_t *n_out, char **buf_out) {
    char *buf = NULL;
    size_t len = 0;
    if (strcmp(path, "-") == 0) {
        size_t cap = 1 << 16;
        buf = cg_xmalloc(cap);
        size_t got;
        while ((got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
            len += got;
            if (cap - len < 4096) buf = cg_xrealloc(buf, cap *= 2);
        }
        buf[len] = 0;
    } else if (cg_file_read(path, &buf, &len)) {
        return NULL;
    }
    size_t cap = 1024, n = 0;
    char **lines = cg_xmalloc(cap * sizeof *lines);
    char *p = buf;
    while (p < buf + len) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        if (!e) e = buf + len;
        *e = 0;
        if (e > p && e[-1] == '\r') e[-1] = 0;
        if (*p) {
            if (n == cap) lines = cg_xrealloc(lines, (cap *= 2) * sizeof *lines);
            lines[n++] = p;
        }
        p = e + 1;
    }
    *n_out = n;
    *buf_out = buf;
    return lines;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        cg_log_error("%s %s: expected an integer from %d to %d", flag, v, lo, hi);
        return CG_ERR_USAGE;
    }
    *out = (int)x;
    return CG_OK;
}

int cmd_tokenize(int argc, char **argv) {
    const char *encoder = NULL, *learn = NULL, *out = NULL;
    text_tok_options opt = {0};
    int vocab_size = 0, pad = 0, json = 0;
    const char **texts = cg_xcalloc((size_t)argc + 1, sizeof *texts);
    int n_texts = 0, rc = CG_OK;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char flag[64] = "";
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a, '=');
            size_t fl = eq ? (size_t)(eq - a) : strlen(a);
            if (fl >= sizeof flag) fl = sizeof flag - 1;
            memcpy(flag, a, fl);
            flag[fl] = 0;
            if (eq) val = eq + 1;
        }
        int takes = !strcmp(flag, "--text-encoder") || !strcmp(flag, "--vocab") || !strcmp(flag, "--text-pretrained") ||
                    !strcmp(flag, "--context") || !strcmp(flag, "--max-chars-per-word") || !strcmp(flag, "--learn") ||
                    !strcmp(flag, "--vocab-size") || !strcmp(flag, "--out");
        if (takes && !val) {
            if (i + 1 >= argc) {
                cg_log_error("%s needs a value", flag);
                rc = CG_ERR_USAGE;
                break;
            }
            val = argv[++i];
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(texts);
            return 0;
        } else if (!strcmp(flag, "--text-encoder")) encoder = val;
        else if (!strcmp(flag, "--vocab")) opt.vocab = val;
        else if (!strcmp(flag, "--text-pretrained")) opt.pretrained = val;
        else if (!strcmp(flag, "--context")) rc = parse_int(flag, val, 2, 1 << 20, &opt.context);
        else if (!strcmp(flag, "--max-chars-per-word")) rc = parse_int(flag, val, 1, 1 << 20, &opt.max_chars_per_word);
        else if (!strcmp(flag, "--learn")) learn = val;
        else if (!strcmp(flag, "--vocab-size")) rc = parse_int(flag, val, 1, 1 << 24, &vocab_size);
        else if (!strcmp(flag, "--out")) out = val;
        else if (!strcmp(a, "--lower-case")) opt.casing = TEXT_TOK_LOWER;
        else if (!strcmp(a, "--cased")) opt.casing = TEXT_TOK_CASED;
        else if (!strcmp(a, "--pad")) pad = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--")) {
            while (++i < argc) texts[n_texts++] = argv[i];
        } else if (a[0] == '-' && a[1] == '-') {
            cg_log_error("tokenize: unknown option %s (clipgrid tokenize --help)", a);
            rc = CG_ERR_USAGE;
        } else {
            texts[n_texts++] = a;
        }
    }
    if (rc) {
        free(texts);
        return rc;
    }
    if (!encoder) {
        cg_log_error("tokenize: --text-encoder NAME is required (clip:ViT-B/32, bert-base-chinese, ...)");
        free(texts);
        return CG_ERR_USAGE;
    }
    text_tok_defaults d;
    if (text_tok_defaults_for(encoder, &d)) {
        cg_log_error("%s", cg_error_message());
        free(texts);
        return CG_ERR_USAGE;
    }
    if (learn) {
        if (!out || vocab_size <= 0) {
            cg_log_error("tokenize --learn needs --vocab-size N and --out FILE");
            free(texts);
            return CG_ERR_USAGE;
        }
        size_t n = 0;
        char *buf = NULL;
        char **lines = read_lines(learn, &n, &buf);
        if (!lines) {
            cg_log_error("%s", cg_error_message());
            free(texts);
            return CG_ERR_IO;
        }
        rc = text_tokenizer_learn(d.kind, (const char *const *)lines, n, vocab_size,
                                  opt.casing == TEXT_TOK_CASE_DEFAULT ? d.lower_case : opt.casing == TEXT_TOK_LOWER, out);
        if (rc) cg_log_error("%s", cg_error_message());
        else cg_log_info("learned a %s vocabulary from %zu captions: %s", d.kind == TEXT_TOK_CLIP_BPE ? "CLIP BPE" : "WordPiece", n, out);
        free(lines);
        free(buf);
        free(texts);
        return rc;
    }
    if (n_texts == 0) {
        cg_log_error("tokenize: no TEXT given (use \"-\" to read lines from stdin)");
        free(texts);
        return CG_ERR_USAGE;
    }
    text_tokenizer *tok = NULL;
    rc = text_tokenizer_load(encoder, &opt, &tok);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        free(texts);
        return rc;
    }
    show_opts so = {tok, text_tokenizer_context(tok), pad, json};
    for (int i = 0; i < n_texts; i++) {
        if (strcmp(texts[i], "-") == 0) {
            size_t n = 0;
            char *buf = NULL;
            char **lines = read_lines("-", &n, &buf);
            for (size_t k = 0; lines && k < n; k++) show(&so, lines[k], strlen(lines[k]));
            free(lines);
            free(buf);
        } else {
            show(&so, texts[i], strlen(texts[i]));
        }
    }
    text_tokenizer_free(tok);
    free(texts);
    return 0;
}
