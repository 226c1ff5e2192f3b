/* UTF-8 validation for JSON output. JSON text must be UTF-8, but a `string` or `bytes` feature
 * and a label's pass-through text may hold any bytes: the JSON writers (the CLI's and the HTTP
 * server's) copy valid sequences and write U+FFFD for every byte that is not part of one, so the
 * document always parses. No I/O, no allocation. */
#ifndef FR_COMMON_UTF8_H
#define FR_COMMON_UTF8_H

#include <stddef.h>

/* The length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when s[0] does not start
 * one: a stray continuation byte, a truncated sequence, an overlong form, a UTF-16 surrogate or
 * a code point above U+10FFFF (RFC 3629). n must be > 0. */
size_t fr_utf8_seq(const unsigned char *s, size_t n);

/* The JSON escape written for a byte that fr_utf8_seq refuses. */
#define FR_UTF8_REPLACEMENT_ESC "\\ufffd"

#endif
