#include "grid/i18n.h"

#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void cg_i18n_init(void) {
    setlocale(LC_ALL, "");
    /* numbers in files and on the command line stay in the C format ("0.0005", not "0,0005") */
    setlocale(LC_NUMERIC, "C");
    const char *env = getenv("CLIPGRID_LOCALEDIR");
    char dir[PATH_MAX + 32] = "";
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
    } else {
        char exe[PATH_MAX];
        if (cg_self_exe(exe, sizeof exe, 1) == 0) {
            snprintf(dir, sizeof dir, "%s/locale", exe);              /* build tree */
            if (!is_dir(dir)) snprintf(dir, sizeof dir, "%s/../share/locale", exe);  /* install prefix */
        }
    }
    if (dir[0] && is_dir(dir)) bindtextdomain("clipgrid", dir);
    bind_textdomain_codeset("clipgrid", "UTF-8");
    textdomain("clipgrid");
}
