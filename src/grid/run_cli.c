#include <stdio.h>
#include "commands.h"
int cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "[ERROR] run: under construction\n"); return 2; }
int cmd_gpus(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "[ERROR] gpus: under construction\n"); return 2; }
