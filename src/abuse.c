/*
 * abuse.c - the abuse limits of abuse.h.
 *
 * Failed logins: each failure within login_fail_window seconds counts, per
 * user id and per source address; from the login_fail_max-th (per user)
 * or login_fail_max_addr-th (per address) on, the next attempt must wait
 * 1, 2, 4 ... seconds (up to login_delay_max) after the last failure.  A success
 * clears the user's count (not the address's: one right password among
 * many guesses does not excuse the guesses).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "abuse.h"
#include "log.h"
#include "monotime.h"
#include "worker.h"

struct limit_fail {
	uint32_t fails;
	time_t last;		/* time of the last failure */
};

/* Entries kept per map before the oldest are swept early. */
#define LIMITS_MAX_ENTRIES 100000

void
limits_init(struct limits *l)
{
	umap_init(&l->fail_user);
	umap_init(&l->fail_addr);
	umap_init(&l->conns_addr);
	l->next_sweep = 0;
}

static void
fail_map_free(struct umap *m)
{
	size_t it = 0;
	uint32_t key;
	void *val;

	while (umap_next(m, &it, &key, &val))
		free(val);
	umap_free(m);
}

void
limits_free(struct limits *l)
{
	fail_map_free(&l->fail_user);
	fail_map_free(&l->fail_addr);
	umap_free(&l->conns_addr);
}

int
limit_request(struct worker *w, struct conn *c)
{
	const struct conf *cf = w->conf;
	uint32_t now_ms, elapsed, cap;
	uint64_t tokens;

	if (cf->rate_limit == 0)
		return 0;
	/* Tokens in thousandths; refilled by rate_limit per second (in 64
	 * bits: a second's refill at the largest rate_limit is 10^9, and
	 * a long idle connection's elapsed time times it overflows 32). */
	now_ms = (uint32_t)monotime_ms();
	cap = (uint32_t)cf->rate_burst * 1000;
	elapsed = now_ms - c->rate_ms;
	c->rate_ms = now_ms;
	tokens = c->rate_tokens + (uint64_t)elapsed * (uint64_t)cf->rate_limit;
	c->rate_tokens = tokens > cap ? cap : (uint32_t)tokens;
	if (c->rate_tokens < 1000) {
		w->stats->limit_refusals++;
		return -1;
	}
	c->rate_tokens -= 1000;
	return 0;
}

/* Seconds f still has to wait, 0 when it may try (max failures allowed
 * before delays start; 0 = no limit). */
static int
fail_wait(const struct worker *w, const struct limit_fail *f, int max)
{
	const struct conf *cf = w->conf;
	long delay;
	uint32_t over;

	if (max == 0 || f == NULL || f->fails < (uint32_t)max ||
	    w->now - f->last >= cf->login_fail_window)
		return 0;
	over = f->fails - (uint32_t)max;
	delay = over >= 20 ? cf->login_delay_max : 1L << over;
	if (delay > cf->login_delay_max)
		delay = cf->login_delay_max;
	return w->now - f->last >= delay ? 0 : (int)(delay - (w->now -
	    f->last));
}

int
limit_login_check(struct worker *w, struct conn *c, uint32_t uid, int *wait,
    const char **key)
{
	int a, b;

	a = fail_wait(w, umap_get(&w->limits.fail_user, uid),
	    w->conf->login_fail_max);
	b = fail_wait(w, umap_get(&w->limits.fail_addr, c->addr),
	    w->conf->login_fail_max_addr);
	*wait = a > b ? a : b;
	*key = a >= b ? "login_fail_max" : "login_fail_max_addr";
	if (*wait == 0)
		return 0;
	w->stats->limit_refusals++;
	return -1;
}

static void
fail_count(struct worker *w, struct umap *m, uint32_t key)
{
	struct limit_fail *f = umap_get(m, key);

	if (f == NULL) {
		if (m->live >= LIMITS_MAX_ENTRIES)
			limits_sweep(w);
		if ((f = calloc(1, sizeof(*f))) == NULL ||
		    umap_put(m, key, f) == -1) {
			free(f);
			return;
		}
	}
	if (w->now - f->last >= w->conf->login_fail_window)
		f->fails = 0;
	f->fails++;
	f->last = w->now;
}

void
limit_login_result(struct worker *w, struct conn *c, uint32_t uid, int ok)
{
	if (ok) {
		free(umap_del(&w->limits.fail_user, uid));
		return;
	}
	fail_count(w, &w->limits.fail_user, uid);
	if (c->addr != 0)
		fail_count(w, &w->limits.fail_addr, c->addr);
}

int
limit_conn_open(struct worker *w, uint32_t addr)
{
	uintptr_t n;

	if (addr == 0)
		return 0;
	n = (uintptr_t)umap_get(&w->limits.conns_addr, addr);
	if (w->conf->max_conns_per_addr != 0 &&
	    n >= (uintptr_t)w->conf->max_conns_per_addr) {
		w->stats->limit_refusals++;
		return -1;
	}
	if (umap_put(&w->limits.conns_addr, addr, (void *)(n + 1)) == -1)
		return -1;
	return 0;
}

void
limit_conn_close(struct worker *w, uint32_t addr)
{
	uintptr_t n;

	if (addr == 0)
		return;
	n = (uintptr_t)umap_get(&w->limits.conns_addr, addr);
	if (n <= 1)
		(void)umap_del(&w->limits.conns_addr, addr);
	else
		(void)umap_put(&w->limits.conns_addr, addr, (void *)(n - 1));
}

static void
sweep_map(struct worker *w, struct umap *m)
{
	size_t it = 0;
	uint32_t key;
	void *val;

	while (umap_next(m, &it, &key, &val)) {
		struct limit_fail *f = val;

		if (w->now - f->last >= w->conf->login_fail_window &&
		    w->now - f->last >= w->conf->login_delay_max)
			free(umap_del(m, key));
	}
}

void
limits_sweep(struct worker *w)
{
	if (w->now < w->limits.next_sweep)
		return;
	w->limits.next_sweep = w->now + 10;
	sweep_map(w, &w->limits.fail_user);
	sweep_map(w, &w->limits.fail_addr);
}
