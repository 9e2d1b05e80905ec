/* i18n.h — the launcher's messages through gettext (glibc's libintl), text domain "clipgrid".
 *
 * _("text") marks a user-facing message: translated when the locale asks for it (zh_CN has a
 * catalog, po/zh_CN.po), English otherwise. Logs, ledger and JSON files stay in English: they
 * are read by programs. tests/test_i18n.c fails when a marked message has no translation.
 */
#ifndef CLIPGRID_GRID_I18N_H
#define CLIPGRID_GRID_I18N_H

#include <libintl.h>

#define _(s) gettext(s)
#define N_(s) (s)

/* setlocale(LC_ALL, "") and bindtextdomain: the catalog is looked for in $CLIPGRID_LOCALEDIR,
 * then next to the binary (<dir of exe>/locale, the build tree), then <exe>/../share/locale
 * (an install prefix). Call once from main(). */
void cg_i18n_init(void);

#endif
