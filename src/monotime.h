/*
 * monotime.h - milliseconds on the monotonic clock, for deadlines and
 * waits (never for what a user sees: that is CLOCK_REALTIME).
 */
#ifndef CHATD_MONOTIME_H
#define CHATD_MONOTIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
monotime_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Seconds on the same clock (the master's deadlines and backoffs). */
static inline time_t
monotime_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

#endif
