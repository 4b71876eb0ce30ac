/* Small compiler helpers shared by every module. */
#ifndef COMMON_MACRO_H
#define COMMON_MACRO_H

/* Fallible functions: ignoring their result is a compile error under -Werror. */
#define WUR __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
