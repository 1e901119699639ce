/*
 * log — leveled error log on stderr and the access log writer.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Written by the control thread only; atomic so workers can read it without a lock. */
static atomic_int log_threshold = RL_LOG_INFO;

struct accesslog {
	FILE *fp;     /* owned unless it is stderr */
	int borrowed; /* fp is stderr */
};

void log_set_level(enum rl_log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

int log_enabled(enum rl_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

__attribute__((format(printf, 3, 0))) static void
log_vwrite(enum rl_log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char ts[32], msg[1024];

	if (!log_enabled(level))
		return;
	util_timestamp(ts, sizeof(ts));
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "%s %s: %s%s%s\n", ts, conf_log_level_name(level), msg, suffix ? ": " : "",
	        suffix ? suffix : "");
}

void log_msg(enum rl_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, NULL, fmt, ap);
	va_end(ap);
}

void log_errno(enum rl_log_level level, const char *fmt, ...)
{
	char err[128];
	va_list ap;

	strerror_r(errno, err, sizeof(err));
	va_start(ap, fmt);
	log_vwrite(level, err, fmt, ap);
	va_end(ap);
}

struct accesslog *accesslog_open(const char *setting, int *off)
{
	struct accesslog *al;

	*off = setting == NULL || strcmp(setting, "off") == 0;
	if (*off)
		return NULL;
	al = calloc(1, sizeof(*al));
	if (al == NULL)
		return NULL;
	if (strcmp(setting, "-") == 0) {
		al->fp = stderr;
		al->borrowed = 1;
		return al;
	}
	al->fp = fopen(setting, "a");
	if (al->fp == NULL) {
		int saved = errno;
		free(al);
		errno = saved;
		return NULL;
	}
	setvbuf(al->fp, NULL, _IOLBF, 0);
	return al;
}

void accesslog_close(struct accesslog *al)
{
	if (al == NULL)
		return;
	if (!al->borrowed)
		fclose(al->fp);
	free(al);
}

void accesslog_write(struct accesslog *al, const char *line, size_t len)
{
	if (al == NULL)
		return;
	flockfile(al->fp);
	fwrite(line, 1, len, al->fp);
	fputc('\n', al->fp);
	funlockfile(al->fp);
}
