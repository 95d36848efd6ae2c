/*
 * cluster.c - names, and the blocking Redis client of cluster.h.
 *
 * The client runs CLUSTER_LUA_RELEASE by its digest: SCRIPT LOAD on every
 * connect, EVALSHA after, and EVAL with the text when Redis answers
 * NOSCRIPT (it lost its scripts; the script is loaded again for the next
 * call).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "log.h"

struct cluster {
	struct conf conf;	/* a copy: the master keeps a handle opened
				 * under an older configuration after a
				 * reload, for workers started under it */
	redisContext *rc;
	time_t next_attempt;
	int down_logged;
	char release_sha[CLUSTER_SHA_LEN];	/* "" until loaded */
};

void
cluster_key_online(const struct conf *c, uint32_t uid, char *buf, size_t len)
{
	/* (cluster_online writes the same keys without snprintf.) */
	(void)snprintf(buf, len, "%sonline:%u", c->redis_prefix, uid);
}

void
cluster_channel_user(const struct conf *c, uint32_t uid, char *buf,
    size_t len)
{
	(void)snprintf(buf, len, "%suser:%u", c->redis_prefix, uid);
}

void
cluster_channel_groups(const struct conf *c, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%sgroups", c->redis_prefix);
}

void
cluster_claim_value(const struct conf *c, uint64_t token, char *buf,
    size_t len)
{
	(void)snprintf(buf, len, "%s|%016llx", c->node_id,
	    (unsigned long long)token);
}

uint32_t
cluster_channel_uid(const struct conf *c, const char *channel, size_t len)
{
	size_t plen = strlen(c->redis_prefix);
	char num[16];
	unsigned long v;
	char *end;

	if (len <= plen + 5 || len - plen - 5 >= sizeof(num) ||
	    memcmp(channel, c->redis_prefix, plen) != 0 ||
	    memcmp(channel + plen, "user:", 5) != 0)
		return 0;
	memcpy(num, channel + plen + 5, len - plen - 5);
	num[len - plen - 5] = '\0';
	v = strtoul(num, &end, 10);
	return *end == '\0' && v > 0 && v < UINT32_MAX ? (uint32_t)v : 0;
}

int
cluster_conf_same(const struct conf *a, const struct conf *b)
{
	if (!conf_redis_enabled(a) || !conf_redis_enabled(b))
		return conf_redis_enabled(a) == conf_redis_enabled(b);
	return strcmp(a->redis_host, b->redis_host) == 0 &&
	    a->redis_port == b->redis_port &&
	    strcmp(a->redis_socket, b->redis_socket) == 0 &&
	    strcmp(a->redis_prefix, b->redis_prefix) == 0 &&
	    strcmp(a->node_id, b->node_id) == 0 &&
	    a->redis_timeout == b->redis_timeout;
}

struct cluster *
cluster_open(const struct conf *conf)
{
	struct cluster *cl;

	if (!conf_redis_enabled(conf))
		return NULL;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		fatalx("%s: out of memory", __func__);
	cl->conf = *conf;
	return cl;
}

void
cluster_close(struct cluster *cl)
{
	if (cl == NULL)
		return;
	if (cl->rc != NULL)
		redisFree(cl->rc);
	free(cl);
}

/* Load the release script on the current connection.  A failure leaves
 * no digest, so calls send the text until the next connect. */
static void
cluster_load(struct cluster *cl)
{
	redisReply *r;

	cl->release_sha[0] = '\0';
	r = redisCommand(cl->rc, "SCRIPT LOAD %s", CLUSTER_LUA_RELEASE);
	if (r != NULL && r->type == REDIS_REPLY_STRING &&
	    r->len == CLUSTER_SHA_LEN - 1)
		memcpy(cl->release_sha, r->str, CLUSTER_SHA_LEN);
	else
		log_warnx("redis: SCRIPT LOAD: %s", r == NULL ? "no reply" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	if (r != NULL)
		freeReplyObject(r);
}

static int
cluster_connect(struct cluster *cl)
{
	const struct conf *c = &cl->conf;
	struct timeval tv = { c->redis_timeout, 0 };
	time_t now = time(NULL);

	if (cl->rc != NULL)
		return 0;
	if (now < cl->next_attempt)
		return -1;
	cl->rc = c->redis_socket[0] != '\0' ?
	    redisConnectUnixWithTimeout(c->redis_socket, tv) :
	    redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
	if (cl->rc == NULL || cl->rc->err) {
		if (!cl->down_logged)
			log_warnx("redis %s:%d unavailable: %s",
			    c->redis_socket[0] ? c->redis_socket :
			    c->redis_host, c->redis_port,
			    cl->rc ? cl->rc->errstr : "out of memory");
		cl->down_logged = 1;
		if (cl->rc != NULL)
			redisFree(cl->rc);
		cl->rc = NULL;
		cl->next_attempt = now + 1;
		return -1;
	}
	(void)redisSetTimeout(cl->rc, tv);
	cl->down_logged = 0;
	cluster_load(cl);
	return 0;
}

/* Drop the connection after an I/O error so the next call reconnects. */
static void
cluster_fail(struct cluster *cl)
{
	if (cl->rc != NULL && cl->rc->err) {
		log_warnx("redis: %s", cl->rc->errstr);
		redisFree(cl->rc);
		cl->rc = NULL;
	}
}

int
cluster_online(struct cluster *cl, const uint32_t *ids, size_t n,
    unsigned char *online)
{
	const char **argv;
	size_t *argvlen, i, plen, d;
	char prefix[CLUSTER_KEY_MAX], digits[10], *keys, *k;
	redisReply *r;
	uint32_t v;
	int rc = -1;

	memset(online, 0, n);
	if (n == 0)
		return 0;
	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	/* cluster_key_online's keys, the prefix printed once: a member of
	 * big groups asks for hundreds at each login. */
	plen = (size_t)snprintf(prefix, sizeof(prefix), "%sonline:",
	    cl->conf.redis_prefix);
	if (plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	argv = malloc((n + 1) * sizeof(*argv));
	argvlen = malloc((n + 1) * sizeof(*argvlen));
	keys = malloc(n * (plen + sizeof(digits)));
	if (argv == NULL || argvlen == NULL || keys == NULL)
		fatalx("%s: out of memory", __func__);
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (i = 0; i < n; i++) {
		k = keys + i * (plen + sizeof(digits));
		memcpy(k, prefix, plen);
		d = sizeof(digits);
		v = ids[i];
		do {
			digits[--d] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0);
		memcpy(k + plen, digits + d, sizeof(digits) - d);
		argv[i + 1] = k;
		argvlen[i + 1] = plen + sizeof(digits) - d;
	}
	r = redisCommandArgv(cl->rc, (int)n + 1, argv, argvlen);
	if (r == NULL) {
		/* A connection left from before a Redis restart fails on
		 * first use: reconnect and ask once more. */
		cluster_fail(cl);
		cl->next_attempt = 0;
		if (cluster_connect(cl) == 0)
			r = redisCommandArgv(cl->rc, (int)n + 1, argv, argvlen);
	}
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == n) {
		for (i = 0; i < n; i++)
			online[i] = r->element[i]->type == REDIS_REPLY_STRING;
		rc = 0;
	}
	if (r != NULL)
		freeReplyObject(r);
	else
		cluster_fail(cl);
	free(argv);
	free(argvlen);
	free(keys);
	return rc;
}

/* Run CLUSTER_LUA_RELEASE on key for the value val; the reply, NULL on an
 * I/O error. */
static redisReply *
cluster_eval_release(struct cluster *cl, const char *key, const char *val,
    size_t vlen)
{
	redisReply *r;

	if (cl->release_sha[0] != '\0') {
		r = redisCommand(cl->rc, "EVALSHA %s 1 %s %b",
		    cl->release_sha, key, val, vlen);
		if (r == NULL || r->type != REDIS_REPLY_ERROR ||
		    strncmp(r->str, "NOSCRIPT", 8) != 0)
			return r;
		freeReplyObject(r);
		cluster_load(cl);
	}
	return redisCommand(cl->rc, "EVAL %s 1 %s %b", CLUSTER_LUA_RELEASE,
	    key, val, vlen);
}

int
cluster_release(struct cluster *cl, uint32_t uid, uint64_t token)
{
	char key[CLUSTER_KEY_MAX], value[CLUSTER_KEY_MAX];
	redisReply *r;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	cluster_key_online(&cl->conf, uid, key, sizeof(key));
	cluster_claim_value(&cl->conf, token, value, sizeof(value));
	r = cluster_eval_release(cl, key, value, strlen(value));
	if (r == NULL) {
		cluster_fail(cl);
		cl->next_attempt = 0;
		if (cluster_connect(cl) == 0)
			r = cluster_eval_release(cl, key, value,
			    strlen(value));
	}
	if (r == NULL) {
		cluster_fail(cl);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

long
cluster_release_node(struct cluster *cl)
{
	char pattern[CLUSTER_KEY_MAX], mine[CLUSTER_KEY_MAX];
	char cursor[32] = "0";
	redisReply *r, *v;
	size_t i, mlen;
	long n = 0;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	(void)snprintf(pattern, sizeof(pattern), "%sonline:*",
	    cl->conf.redis_prefix);
	(void)snprintf(mine, sizeof(mine), "%s|", cl->conf.node_id);
	mlen = strlen(mine);
	do {
		r = redisCommand(cl->rc, "SCAN %s MATCH %s COUNT 1000", cursor,
		    pattern);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
		    r->elements != 2) {
			if (r != NULL)
				freeReplyObject(r);
			cluster_fail(cl);
			return -1;
		}
		(void)snprintf(cursor, sizeof(cursor), "%s",
		    r->element[0]->str);
		for (i = 0; i < r->element[1]->elements; i++) {
			const char *key = r->element[1]->element[i]->str;

			v = redisCommand(cl->rc, "GET %s", key);
			if (v != NULL && v->type == REDIS_REPLY_STRING &&
			    v->len > mlen && memcmp(v->str, mine, mlen) == 0) {
				redisReply *d = cluster_eval_release(cl, key,
				    v->str, v->len);

				if (d != NULL) {
					n += d->type == REDIS_REPLY_INTEGER &&
					    d->integer > 0;
					freeReplyObject(d);
				}
			}
			if (v != NULL)
				freeReplyObject(v);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return n;
}
