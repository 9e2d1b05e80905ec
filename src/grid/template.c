#include "grid/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "grid/i18n.h"

static const char *const placeholders[] = {"image_encoder", "text_encoder", "id", "out_dir", "gpu", "log",
                                           "train_args", "extra_args", NULL};

typedef struct { char *s; size_t len, cap; } strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = cg_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}
static void sb_puts(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

char *shell_quote(const char *s) {
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=+@%", *p) != NULL;
    if (plain) return cg_xstrdup(s);
    strbuf b = {0};
    sb_puts(&b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'') sb_puts(&b, "'\\''");
        else sb_add(&b, p, 1);
    }
    sb_puts(&b, "'");
    return b.s;
}

static void add_quoted(strbuf *b, const char *s) {
    char *q = shell_quote(s ? s : "");
    sb_puts(b, q);
    free(q);
}

char *train_options_to_flags(const cJSON *train) {
    strbuf b = {0};
    sb_puts(&b, "");
    for (const cJSON *c = train ? train->child : NULL; c; c = c->next) {
        if (cJSON_IsFalse(c)) continue;
        if (b.len) sb_puts(&b, " ");
        sb_puts(&b, "--");
        for (const char *p = c->string; *p; p++) sb_add(&b, *p == '_' ? "-" : p, 1);
        if (cJSON_IsTrue(c)) continue;
        sb_puts(&b, " ");
        if (cJSON_IsNumber(c)) {
            char num[64];
            if (c->valuedouble == (double)(long long)c->valuedouble && c->valuedouble < 1e15 && c->valuedouble > -1e15)
                snprintf(num, sizeof num, "%lld", (long long)c->valuedouble);
            else {  /* shortest text that reads back as the same double */
                for (int prec = 6; prec <= 17; prec++) {
                    snprintf(num, sizeof num, "%.*g", prec, c->valuedouble);
                    if (strtod(num, NULL) == c->valuedouble) break;
                }
            }
            sb_puts(&b, num);
        } else {
            add_quoted(&b, cJSON_IsString(c) ? c->valuestring : "");
        }
    }
    return b.s;
}

/* Length of the placeholder name at `p` (just after '{'), or -1 if none is closed there. */
static int placeholder_len(const char *p) {
    const char *e = strchr(p, '}');
    return e ? (int)(e - p) : -1;
}

static int is_placeholder(const char *p, int len) {
    for (int i = 0; placeholders[i]; i++)
        if ((int)strlen(placeholders[i]) == len && !strncmp(p, placeholders[i], (size_t)len)) return 1;
    return 0;
}

int template_check(const char *tmpl) {
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '{' && p[1] == '{') { p++; continue; }
        if (p[0] == '}' && p[1] == '}') { p++; continue; }
        if (*p != '{') continue;
        int len = placeholder_len(p + 1);
        if (len < 0)
            return cg_error_set(CG_ERR_USAGE, _("--command: unclosed \"{\" at character %d of \"%s\""),
                                (int)(p - tmpl) + 1, tmpl);
        if (!is_placeholder(p + 1, len))
            return cg_error_set(CG_ERR_USAGE, _("--command: unknown placeholder {%.*s} (known: {image_encoder} "
                                "{text_encoder} {id} {out_dir} {gpu} {log} {train_args} {extra_args})"), len, p + 1);
        p += len + 1;
    }
    return CG_OK;
}

static void add_extra(strbuf *b, const template_values *v) {
    for (int i = 0; i < v->n_extra; i++) {
        if (i) sb_puts(b, " ");
        add_quoted(b, v->extra_args[i]);
    }
}

char *template_expand(const char *tmpl, const template_values *v) {
    strbuf b = {0};
    sb_puts(&b, "");
    int placed_extra = 0;
    for (const char *p = tmpl; *p; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            sb_add(&b, p, 1);
            p++;
            continue;
        }
        if (*p != '{') {
            sb_add(&b, p, 1);
            continue;
        }
        int len = placeholder_len(p + 1);
        const char *name = p + 1;
        p += len + 1;
#define IS(s) (len == (int)strlen(s) && !strncmp(name, s, (size_t)len))
        if (IS("image_encoder")) add_quoted(&b, v->image_encoder);
        else if (IS("text_encoder")) add_quoted(&b, v->text_encoder);
        else if (IS("id")) add_quoted(&b, v->id);
        else if (IS("out_dir")) add_quoted(&b, v->out_dir);
        else if (IS("gpu")) add_quoted(&b, v->gpu);
        else if (IS("log")) add_quoted(&b, v->log);
        else if (IS("train_args")) {
            char *flags = train_options_to_flags(v->train);
            sb_puts(&b, flags);
            free(flags);
        } else if (IS("extra_args")) {
            add_extra(&b, v);
            placed_extra = 1;
        }
#undef IS
    }
    if (!placed_extra && v->n_extra) {
        sb_puts(&b, " ");
        add_extra(&b, v);
    }
    return b.s;
}
