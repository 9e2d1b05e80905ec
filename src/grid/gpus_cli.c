#include <stdio.h>
#include "commands.h"
int cmd_gpus(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "[ERROR] gpus: under construction\n"); return 2; }
