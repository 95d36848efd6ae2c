/*
 * abuse.h - abuse limits of one worker (all answered with errno 12):
 * a token bucket of requests per connection, failed logins per user id
 * and per source address with a growing delay, and connections per
 * source address.  The counters are the worker's own: with W workers a
 * source can reach W times a per-address limit before every worker
 * refuses it (see chatd.conf(5)).
 */
#ifndef CHATD_ABUSE_H
#define CHATD_ABUSE_H

#include <stdint.h>
#include <time.h>

#include "umap.h"

struct worker;
struct conn;

struct limits {
	struct umap fail_user;		/* uid -> struct limit_fail */
	struct umap fail_addr;		/* addr key -> struct limit_fail */
	struct umap conns_addr;		/* addr key -> count (as pointer) */
	time_t next_sweep;
};

void limits_init(struct limits *l);
void limits_free(struct limits *l);
/* A request arrived on c: 0 to serve it, -1 when over rate_limit. */
int limit_request(struct worker *w, struct conn *c);
/* May uid log in from c now?  0, or -1 with the seconds to wait. */
int limit_login_check(struct worker *w, struct conn *c, uint32_t uid,
    int *wait, const char **key);
/* The outcome of a login attempt (ok = credentials were right). */
void limit_login_result(struct worker *w, struct conn *c, uint32_t uid,
    int ok);
/* A connection from addr key opens / closes: -1 when over
 * max_conns_per_addr (then nothing was counted). */
int limit_conn_open(struct worker *w, uint32_t addr);
void limit_conn_close(struct worker *w, uint32_t addr);
/* Drop expired entries (called every second). */
void limits_sweep(struct worker *w);

#endif
