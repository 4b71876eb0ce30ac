/* The release of the whole tree; every program prints it for --version. */
#ifndef COMMON_VERSION_H
#define COMMON_VERSION_H

#define RETURNS_VERSION "0.1.0"

#endif
