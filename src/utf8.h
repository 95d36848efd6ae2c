/*
 * utf8.h - strict UTF-8 validation (no overlongs, no surrogates, nothing
 * above U+10FFFF) and a printable-text check for names.
 */
#ifndef CHATD_UTF8_H
#define CHATD_UTF8_H

#include <stddef.h>

/* 1 when s[0..len) is well-formed UTF-8, else 0. */
int utf8_valid(const char *s, size_t len);
/* 1 when s[0..len) is valid UTF-8 with no control characters (C0, DEL,
 * C1), else 0.  Used for user and group names. */
int utf8_printable(const char *s, size_t len);

#endif
