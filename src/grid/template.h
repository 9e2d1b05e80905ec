/* template.h — per-config command lines from a template.
 *
 * A template is a shell command line with placeholders, run by /bin/sh -c:
 *   {image_encoder} {text_encoder} {id} {out_dir} {gpu} {log} {train_args} {extra_args}
 * Every substituted value is shell-quoted, so names with '/' ':' or spaces are safe.
 * {train_args} expands to the config's train options as flags ("--batch-size 256 --lr 0.0005");
 * {extra_args} to the arguments given after "--" (appended at the end when the template does
 * not place them). "{{" and "}}" are literal braces.
 */
#ifndef CLIPGRID_GRID_TEMPLATE_H
#define CLIPGRID_GRID_TEMPLATE_H

#include <cjson/cJSON.h>

typedef struct {
    const char *image_encoder, *text_encoder, *id, *out_dir, *gpu, *log;
    const cJSON *train;          /* object of train options, may be NULL */
    char **extra_args;           /* after "--" */
    int n_extra;
} template_values;

/* CG_OK, or CG_ERR_USAGE naming an unknown placeholder or an unclosed brace. */
int template_check(const char *tmpl);
/* The command line (malloc()ed). Call template_check first. */
char *template_expand(const char *tmpl, const template_values *v);
/* Single-quote `s` for /bin/sh (malloc()ed); plain words are left bare. */
char *shell_quote(const char *s);
/* Train options as command-line flags: {"batch_size": 256, "freeze_text": true} ->
 * "--batch-size 256 --freeze-text" (malloc()ed, values quoted). */
char *train_options_to_flags(const cJSON *train);

#endif
