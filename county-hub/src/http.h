/* The HTTP server helpers moved to common/ (common/http_server.h) so that region-server
 * shares them; this name stays so that the hub's files need no change. */
#ifndef COUNTY_HUB_HTTP_H
#define COUNTY_HUB_HTTP_H

#include "common/http_server.h"

#endif
