/*
 * log.c - levelled logging to stderr with journald priority prefixes.
 *
 * The state here (process name, level) is the one deliberate global of the
 * program: logging must work from any layer without threading a context
 * through every call, exactly as OpenBSD daemons do.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "monotime.h"

static char log_proc[32] = "chatd";
/* Set by a worker's loop on reload while its job threads log. */
static atomic_int log_level = LOG_LEVEL_INFO;

void
log_init(const char *procname, int level)
{
	log_setproc(procname);
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

void
log_setproc(const char *procname)
{
	(void)snprintf(log_proc, sizeof(log_proc), "%s", procname);
}

void
log_setlevel(int level)
{
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int
log_getlevel(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
log_level_parse(const char *s)
{
	if (strcasecmp(s, "error") == 0)
		return LOG_LEVEL_ERR;
	if (strcasecmp(s, "warning") == 0 || strcasecmp(s, "warn") == 0)
		return LOG_LEVEL_WARNING;
	if (strcasecmp(s, "info") == 0)
		return LOG_LEVEL_INFO;
	if (strcasecmp(s, "debug") == 0)
		return LOG_LEVEL_DEBUG;
	return -1;
}

static void __attribute__((format(printf, 3, 0)))
log_vwrite(int pri, int with_errno, const char *fmt, va_list ap)
{
	char msg[1024];
	char line[1200];
	int saved = errno;
	int n;

	if (pri > atomic_load_explicit(&log_level, memory_order_relaxed))
		goto out;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno)
		n = snprintf(line, sizeof(line), "<%d>%s[%ld]: %s: %s\n", pri,
		    log_proc, (long)getpid(), msg, strerror(saved));
	else
		n = snprintf(line, sizeof(line), "<%d>%s[%ld]: %s\n", pri,
		    log_proc, (long)getpid(), msg);
	if (n < 0)
		goto out;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line keeps lines from several processes whole. */
	(void)!write(STDERR_FILENO, line, (size_t)n);
out:
	errno = saved;
}

#define LOG_FN(name, pri, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_vwrite(pri, with_errno, fmt, ap);			\
	va_end(ap);						\
}

LOG_FN(log_warn, LOG_LEVEL_WARNING, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARNING, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

unsigned long
log_every(struct log_every *e)
{
	uint64_t now = monotime_ms();
	unsigned long n;

	e->n++;
	if (now - e->at_ms < 1000)
		return 0;
	n = e->n;
	e->n = 0;
	e->at_ms = now;
	return n;
}
