/* Display width of UTF-8 text moved to common/ (common/textwidth.h) so that region-query
 * shares it; this name stays so that the hub's files need no change. */
#ifndef COUNTY_HUB_TEXTWIDTH_H
#define COUNTY_HUB_TEXTWIDTH_H

#include "common/textwidth.h"

#endif
