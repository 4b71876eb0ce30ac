/* Where a program finds the forms and calendars when not told (DESIGN section 10):
 * run from a build tree (the executable sits in <tree>/<program>/ or <tree>/tools/ and
 * <tree>/schemas/forms exists), the source tree's schemas/; otherwise the installed data
 * folder, RETURNS_DATADIR fixed at build time from PREFIX. */
#ifndef COMMON_DATADIR_H
#define COMMON_DATADIR_H

#include <stddef.h>

#include "common/macro.h"

/* Writes the schemas folder into out (NUL-terminated). -ENAMETOOLONG if it does not fit,
 * -ENOENT if neither place has a forms/ folder. */
int datadir_schemas(char *out, size_t outlen) WUR;

#endif
