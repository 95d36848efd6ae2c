/*
 * log.h - the one logging API of chatd, chatctl and the tests' helpers.
 *
 * Modelled on OpenBSD's log.c: warn variants append strerror(errno), the x
 * variants do not; fatal/fatalx log and exit(1).  Every function preserves
 * errno so a caller can log and then still inspect it.  Output goes to stderr
 * with a "<N>" syslog priority prefix that journald understands, so the same
 * lines are levelled whether chatd runs in a terminal or under systemd.
 */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Set the process name shown in each line ("master", "worker 2"). */
void log_init(const char *procname, int level);
void log_setproc(const char *procname);
void log_setlevel(int level);
int log_getlevel(void);
/* Parse "error", "warning", "info", "debug"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * A warning for something that may happen thousands of times a second
 * (a full queue refusing): count each time with log_every(), which
 * returns how many times it happened when a line is due, at most once a
 * second (the count starts again), and 0 otherwise.
 */
struct log_every {
	unsigned long n;	/* since the last line */
	unsigned long long at_ms; /* when that line was due */
};
unsigned long log_every(struct log_every *e);

void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
