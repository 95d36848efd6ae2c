/*
 * bench_hist.h - chat-bench's latency histogram: HDR-style log-linear
 * buckets (exact below 128, then 64 buckets per power of two, so every
 * reported value is within 1/64 = 1.6 % of the truth), fixed size so a
 * worker process can send it to its parent as plain bytes.
 *
 * Values are nanoseconds; anything past 2^40 ns (18 minutes) lands in the
 * last bucket.  min, max, count and sum are exact.
 */
#ifndef CHATD_BENCH_HIST_H
#define CHATD_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	7	/* 2^7 exact values, then 2^6 per octave */
#define HIST_MAX_BITS	40	/* highest power of two kept apart */
#define HIST_BUCKETS	((1 << HIST_SUB_BITS) + \
	(HIST_MAX_BITS - HIST_SUB_BITS + 1) * (1 << (HIST_SUB_BITS - 1)))

struct hist {
	uint64_t n;		/* values recorded */
	uint64_t sum;		/* their sum, for the mean */
	uint64_t min, max;	/* exact; min is UINT64_MAX when n is 0 */
	uint64_t c[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
/* dst += src. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at quantile q (0..1): the top of the bucket holding the
 * ceil(q*n)-th smallest value, never above max; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Bucket index of v and the largest value bucket i holds (for tests). */
unsigned hist_index(uint64_t v);
uint64_t hist_top(unsigned i);

#endif
