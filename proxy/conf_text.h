/*
 * conf_text — what conf.c and conf_keysrc.c share: reason formatting and the small text
 * and number helpers of the config syntax. Internal to the config module.
 */
#ifndef RL_CONF_TEXT_H
#define RL_CONF_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_WHY_MAX 512 /* one reason text, bytes (it quotes the value) */

#define FORMAT(a, b) __attribute__((format(printf, a, b)))

enum conf_num { CONF_NUM_OK = 0, CONF_NUM_SYNTAX, CONF_NUM_OVERFLOW };

/* Format a reason into buf; returns -1 so parsers can `return conf_why(...)`. */
int FORMAT(3, 4) conf_why(char *buf, size_t size, const char *fmt, ...);

const char *conf_skip_space(const char *s);

/* Copy s[0..len) without surrounding whitespace; NULL when out of memory. */
char *conf_dup_trimmed(const char *s, size_t len);

/* Visible ASCII only (no spaces, no control bytes), at least one byte. */
bool conf_is_visible(const char *s);

/* An HTTP token (RFC 9110 tchar), at least one byte. */
bool conf_is_token(const char *s);

/* Leading decimal digits of s (no sign, no space); *end is set after them. */
enum conf_num conf_parse_digits(const char *s, uint64_t *out, const char **end);

/* End of the key source that starts at s: the next sep followed by a known source
 * prefix, else the end of s (so a regex may hold commas). */
const char *conf_keysrc_end(const char *s, char sep);

#endif
