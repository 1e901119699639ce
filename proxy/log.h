/*
 * log — the error log (stderr) and the access log.
 *
 * Line shape: "<time> <level>: <object> <name>: <event> (<reason>)". The level threshold is
 * set by the control thread (startup, reload) and read by every thread.
 */
#ifndef RL_LOG_H
#define RL_LOG_H

#include <stdio.h>

#include "conf.h"

void log_set_level(enum rl_log_level level);
int log_enabled(enum rl_log_level level);

void log_msg(enum rl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with ": strerror(errno)" appended. */
void log_errno(enum rl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(RL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(RL_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(RL_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(RL_LOG_DEBUG))                                                     \
			log_msg(RL_LOG_DEBUG, __VA_ARGS__);                                        \
	} while (0)

/* The access log: one line per request. NULL when "off". */
struct accesslog;

/* Open per the access_log setting ("-", "off" or a path, appended). NULL + errno on failure,
 * *off set when the log is disabled. */
struct accesslog *accesslog_open(const char *setting, int *off);
void accesslog_close(struct accesslog *al);
/* Write one line (without newline; it is added). Thread-safe (stdio locking). */
void accesslog_write(struct accesslog *al, const char *line, size_t len);

#endif
