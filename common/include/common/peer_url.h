/* The URL of a peer tier (a school's county hub, a hub's region): it must be https://,
 * or plain http:// to a loopback address only (DESIGN section 10), and carry no query.
 * Thread-safe. */
#ifndef COMMON_PEER_URL_H
#define COMMON_PEER_URL_H

#include <stddef.h>

#include "common/macro.h"

/* 0 when url is acceptable; -EINVAL with a message naming the peer ("hub", "region") in
 * err otherwise, -ENOMEM. */
int peer_url_check(const char *url, const char *peer, char *err, size_t errlen) WUR;

#endif
