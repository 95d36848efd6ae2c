/*
 * bench_hist.c - the log-linear histogram of bench_hist.h.
 *
 * Index of v: below 2^S (S = HIST_SUB_BITS) the value itself; above, the
 * top S bits of v choose one of 2^(S-1) sub-buckets of v's octave.  This
 * is the HdrHistogram layout with a fixed range, which keeps recording to
 * a couple of instructions and merging to an array sum.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench_hist.h"

#define HALF	(1u << (HIST_SUB_BITS - 1))

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift, i;

	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	if (msb > HIST_MAX_BITS)
		return HIST_BUCKETS - 1;
	shift = msb - HIST_SUB_BITS + 1;
	i = (1u << HIST_SUB_BITS) + (shift - 1) * HALF +
	    (unsigned)(v >> shift) - HALF;
	return i;
}

uint64_t
hist_top(unsigned i)
{
	unsigned shift, sub;

	if (i < (1u << HIST_SUB_BITS))
		return i;
	i -= 1u << HIST_SUB_BITS;
	shift = i / HALF + 1;
	sub = i % HALF + HALF;
	return (((uint64_t)sub + 1) << shift) - 1;
}

void
hist_add(struct hist *h, uint64_t v)
{
	h->c[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (src->n == 0)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->c[i] += src->c[i];
	dst->n += src->n;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, top;
	unsigned i;

	if (h->n == 0)
		return 0;
	if (q <= 0)
		return h->min;
	rank = (uint64_t)ceil(q * (double)h->n);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->c[i];
		if (seen >= rank) {
			top = hist_top(i);
			if (top > h->max)
				top = h->max;
			if (top < h->min)
				top = h->min;
			return top;
		}
	}
	return h->max;
}
