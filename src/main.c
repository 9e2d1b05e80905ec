/* clipgrid — CLIP training in C, and the launcher that trains a grid of CLIP configurations.
 * This file only dispatches to the subcommands declared in commands.h. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "grid/i18n.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run",  cmd_run,  "train a grid of image x text encoder configurations in parallel on GPUs"},
    {"train", cmd_train, "train one CLIP configuration (StarNet image tower x text tower)"},
    {"eval", cmd_eval, "zero-shot accuracy and retrieval R@1/5/10 of a trained run"},
    {"gpus", cmd_gpus, "list GPUs as NVML sees them: utilization, memory, processes"},
    {"models", cmd_models, "list the image encoders with parameter counts and MACs at an image size"},
    {"data", cmd_data, "export Fashion-MNIST as image files with manifests, or as WebDataset shards"},
    {"tokenize", cmd_tokenize, "show the token ids and pieces of a text encoder's tokenizer; learn a vocabulary"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: clipgrid <command> [options]   (clipgrid <command> --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nclipgrid %s — docs/ in the source tree has the full reference.\n", CLIPGRID_VERSION);
}

int main(int argc, char **argv) {
    cg_i18n_init();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("clipgrid %s\n", CLIPGRID_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "[ERROR] unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
