/* commands.h — the subcommands of the clipgrid program.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand name) and returns the
 * process exit status. Each answers --help. main.c only dispatches.
 */
#ifndef CLIPGRID_COMMANDS_H
#define CLIPGRID_COMMANDS_H

int cmd_run(int argc, char **argv);     /* grid/run_cli.c   — the grid launcher */
int cmd_gpus(int argc, char **argv);    /* grid/gpus_cli.c  — GPUs as NVML sees them */
int cmd_models(int argc, char **argv);  /* models/models_cli.c — encoders, params, MACs */
int cmd_tokenize(int argc, char **argv); /* text/tokenize_cli.c — tokenizer ids and pieces */
int cmd_train(int argc, char **argv);   /* train/train_cli.c — train one CLIP configuration */
int cmd_eval(int argc, char **argv);    /* train/train_cli.c — zero-shot and retrieval of a run */
int cmd_data(int argc, char **argv);    /* data/data_cli.c — export Fashion-MNIST as files or shards */

#endif
