/*
 * cluster.c - names, and the blocking Redis client of cluster.h.
 *
 * The client runs CLUSTER_LUA_RELEASE by its digest: SCRIPT LOAD on every
 * connect, EVALSHA after, and EVAL with the text when Redis answers
 * NOSCRIPT (it lost its scripts; the script is loaded again for the next
 * call).  It releases claims CLUSTER_RELEASE_BATCH to a command: a dead
 * worker's thousands of sessions are a few round trips, not one each.
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
	int check_server;	/* cluster_check_server: at each connect */
	char release_sha[CLUSTER_SHA_LEN];	/* "" until loaded */
};

void
cluster_key_online(const struct conf *c, uint32_t uid, char *buf, size_t len)
{
	/* (cluster_online writes the same keys without snprintf.) */
	(void)snprintf(buf, len, "%sonline:%u", c->redis_prefix, uid);
}

void
cluster_key_gone(const struct conf *c, uint32_t uid, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%sgone:%u", c->redis_prefix, uid);
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

/* uid from "P WHAT:UID" (what with its colon), 0 when it is not one. */
static uint32_t
name_uid(const struct conf *c, const char *what, const char *name,
    size_t len)
{
	size_t plen = strlen(c->redis_prefix), wlen = strlen(what);
	char num[16];
	unsigned long v;
	char *end;

	if (len <= plen + wlen || len - plen - wlen >= sizeof(num) ||
	    memcmp(name, c->redis_prefix, plen) != 0 ||
	    memcmp(name + plen, what, wlen) != 0 ||
	    name[plen + wlen] < '1' || name[plen + wlen] > '9')
		return 0;
	memcpy(num, name + plen + wlen, len - plen - wlen);
	num[len - plen - wlen] = '\0';
	v = strtoul(num, &end, 10);
	return *end == '\0' && v > 0 && v < UINT32_MAX ? (uint32_t)v : 0;
}

uint32_t
cluster_channel_uid(const struct conf *c, const char *channel, size_t len)
{
	return name_uid(c, "user:", channel, len);
}

uint32_t
cluster_key_online_uid(const struct conf *c, const char *key, size_t len)
{
	return name_uid(c, "online:", key, len);
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

/*
 * A claim that expires (its node died, froze, was cut off) is heard of
 * only through Redis' keyevent notifications, which Redis ships without:
 * the friends of that node's users would go on seeing them online.  Say
 * so.  "A" stands for every class but the key-miss one, "x" included.
 */
static void
cluster_server_events(struct cluster *cl)
{
	redisReply *r;
	const char *v;

	r = redisCommand(cl->rc, "CONFIG GET notify-keyspace-events");
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		v = r->element[1]->str;
		if (strchr(v, 'E') == NULL || (strchr(v, 'x') == NULL &&
		    strchr(v, 'A') == NULL))
			log_warnx("redis: notify-keyspace-events is \"%s\": "
			    "without \"Ex\" Redis does not say when a claim "
			    "expires, and when a host dies its users' friends "
			    "on other hosts are not told they went offline; "
			    "set it to \"Ex\" (see chatd(8))", v);
	}
	freeReplyObject(r);
}

/*
 * Redis closes a subscriber whose unread output passes the pub/sub class
 * of client-output-buffer-limit and throws that output away.  Every one
 * of those messages had been counted as received by its PUBLISH and
 * ACKed "delivered", so a worker that falls behind for a moment under a
 * burst (short of CPU) loses them.  Say so when the limit is set; a
 * server that refuses CONFIG (renamed away, as managed services do) is
 * not asked again.
 */
static void
cluster_server_limits(struct cluster *cl)
{
	unsigned long long hard, soft, secs;
	const char *p;
	redisReply *r;

	r = redisCommand(cl->rc, "CONFIG GET client-output-buffer-limit");
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING &&
	    (p = strstr(r->element[1]->str, "pubsub ")) != NULL &&
	    sscanf(p + 7, "%llu %llu %llu", &hard, &soft, &secs) == 3) {
		if (hard != 0 || soft != 0)
			log_warnx("redis: client-output-buffer-limit pubsub is "
			    "%llu %llu %llu: Redis disconnects a subscriber "
			    "that falls that far behind and drops the messages "
			    "it held for it, which were ACKed \"delivered\"; "
			    "set it to \"pubsub 0 0 0\" (see chatd(8))", hard,
			    soft, secs);
	} else {
		log_info("redis: cannot read client-output-buffer-limit (%s); "
		    "make sure its pubsub class is 0 0 0 and "
		    "notify-keyspace-events has \"Ex\" (see chatd(8))",
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		cl->check_server = 0;
	}
	freeReplyObject(r);
	if (cl->check_server)
		cluster_server_events(cl);
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
	if (cl->check_server)
		cluster_server_limits(cl);
	cluster_load(cl);
	return 0;
}

void
cluster_check_server(struct cluster *cl)
{
	if (cl == NULL)
		return;
	cl->check_server = 1;
	(void)cluster_connect(cl);
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
cluster_claimed_else(struct cluster *cl, uint32_t uid, uint64_t token)
{
	char key[CLUSTER_KEY_MAX], own[CLUSTER_KEY_MAX];
	redisReply *r;
	int rc = -1;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	cluster_key_online(&cl->conf, uid, key, sizeof(key));
	cluster_claim_value(&cl->conf, token, own, sizeof(own));
	if ((r = redisCommand(cl->rc, "GET %s", key)) == NULL) {
		cluster_fail(cl);
		return -1;
	}
	if (r->type == REDIS_REPLY_NIL)
		rc = 0;
	else if (r->type == REDIS_REPLY_STRING)
		rc = token == 0 || strcmp(r->str, own) != 0;
	freeReplyObject(r);
	return rc;
}

int
cluster_gone_take(struct cluster *cl, uint32_t uid)
{
	char key[CLUSTER_KEY_MAX], gone[CLUSTER_KEY_MAX];
	redisReply *r;
	int rc = -1;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	cluster_key_online(&cl->conf, uid, key, sizeof(key));
	cluster_key_gone(&cl->conf, uid, gone, sizeof(gone));
	/* Rare (a node's death), so the text each time. */
	if ((r = redisCommand(cl->rc, "EVAL %s 2 %s %s %d", CLUSTER_LUA_GONE,
	    key, gone, CLUSTER_GONE_TTL)) == NULL) {
		cluster_fail(cl);
		return -1;
	}
	if (r->type == REDIS_REPLY_INTEGER)
		rc = r->integer == 1;
	else
		log_warnx("redis: user %u: gone marker: %s", uid,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	return rc;
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

/*
 * Claims to delete, CLUSTER_RELEASE_BATCH at a time: the arguments of
 * one EVALSHA (the command, the digest, the key count, the keys, the
 * values) and the storage of its keys and values.
 */
struct release_batch {
	struct cluster *cl;
	size_t n;			/* claims in the batch */
	long deleted;			/* by the batches sent */
	int failed;			/* a batch could not be sent */
	int expire;			/* CLUSTER_LUA_EXPIRE, not _RELEASE */
	const char *argv[3 + 2 * CLUSTER_RELEASE_BATCH];
	size_t argvlen[3 + 2 * CLUSTER_RELEASE_BATCH];
	char keys[CLUSTER_RELEASE_BATCH][CLUSTER_KEY_MAX];
	char vals[CLUSTER_RELEASE_BATCH][CLUSTER_KEY_MAX];
	size_t klen[CLUSTER_RELEASE_BATCH], vlen[CLUSTER_RELEASE_BATCH];
};

/* Run CLUSTER_LUA_RELEASE (or _EXPIRE, once at start: its text) on b's
 * claims; the reply, NULL on an I/O error. */
static redisReply *
release_eval(struct release_batch *b)
{
	struct cluster *cl = b->cl;
	char nkeys[24];
	redisReply *r;
	int argc = 3 + 2 * (int)b->n;

	(void)snprintf(nkeys, sizeof(nkeys), "%zu", b->n);
	b->argv[2] = nkeys;
	b->argvlen[2] = strlen(nkeys);
	if (b->expire) {
		b->argv[0] = "EVAL";
		b->argvlen[0] = 4;
		b->argv[1] = CLUSTER_LUA_EXPIRE;
		b->argvlen[1] = sizeof(CLUSTER_LUA_EXPIRE) - 1;
		return redisCommandArgv(cl->rc, argc, b->argv, b->argvlen);
	}
	if (cl->release_sha[0] != '\0') {
		b->argv[0] = "EVALSHA";
		b->argvlen[0] = 7;
		b->argv[1] = cl->release_sha;
		b->argvlen[1] = CLUSTER_SHA_LEN - 1;
		r = redisCommandArgv(cl->rc, argc, b->argv, b->argvlen);
		if (r == NULL || r->type != REDIS_REPLY_ERROR ||
		    strncmp(r->str, "NOSCRIPT", 8) != 0)
			return r;
		freeReplyObject(r);
		cluster_load(cl);
	}
	b->argv[0] = "EVAL";
	b->argvlen[0] = 4;
	b->argv[1] = CLUSTER_LUA_RELEASE;
	b->argvlen[1] = sizeof(CLUSTER_LUA_RELEASE) - 1;
	return redisCommandArgv(cl->rc, argc, b->argv, b->argvlen);
}

/* Send the batch (once more on a fresh connection after an I/O error:
 * the script deletes only what still matches, so a second run is
 * harmless) and empty it. */
static void
release_flush(struct release_batch *b)
{
	struct cluster *cl = b->cl;
	redisReply *r = NULL;
	size_t i;

	if (b->n == 0)
		return;
	if (b->failed) {
		/* Redis did not answer an earlier batch even on a new
		 * connection: asking again would block the master for a
		 * connect timeout per batch.  The rest expire. */
		b->n = 0;
		return;
	}
	for (i = 0; i < b->n; i++) {
		b->argv[3 + i] = b->keys[i];
		b->argvlen[3 + i] = b->klen[i];
		b->argv[3 + b->n + i] = b->vals[i];
		b->argvlen[3 + b->n + i] = b->vlen[i];
	}
	if (cluster_connect(cl) == 0 && (r = release_eval(b)) == NULL) {
		cluster_fail(cl);
		cl->next_attempt = 0;
		if (cluster_connect(cl) == 0)
			r = release_eval(b);
	}
	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		b->deleted += r->integer;
	else {
		if (r != NULL)
			log_warnx("redis: releasing claims: %s",
			    r->type == REDIS_REPLY_ERROR ? r->str :
			    "unexpected reply");
		b->failed = 1;
	}
	if (r != NULL)
		freeReplyObject(r);
	else
		cluster_fail(cl);
	b->n = 0;
}

static struct release_batch *
release_begin(struct cluster *cl)
{
	struct release_batch *b;

	if ((b = malloc(sizeof(*b))) == NULL)
		fatalx("%s: out of memory", __func__);
	b->cl = cl;
	b->n = 0;
	b->deleted = 0;
	b->failed = 0;
	b->expire = 0;
	return b;
}

/* Add the claim key = val to the batch; sent when full. */
static void
release_add(struct release_batch *b, const char *key, size_t klen,
    const char *val, size_t vlen)
{
	if (klen >= CLUSTER_KEY_MAX || vlen >= CLUSTER_KEY_MAX)
		return;		/* never one of ours */
	memcpy(b->keys[b->n], key, klen);
	b->klen[b->n] = klen;
	memcpy(b->vals[b->n], val, vlen);
	b->vlen[b->n] = vlen;
	if (++b->n == CLUSTER_RELEASE_BATCH)
		release_flush(b);
}

/* Send what is left; the claims deleted, or -1 if a batch failed. */
static long
release_end(struct release_batch *b)
{
	long n;

	release_flush(b);
	n = b->failed ? -1 : b->deleted;
	free(b);
	return n;
}

long
cluster_release(struct cluster *cl, const uint32_t *uids,
    const uint64_t *tokens, size_t n)
{
	struct release_batch *b;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	size_t i;

	if (cl == NULL)
		return -1;
	if (n == 0)
		return 0;
	b = release_begin(cl);
	for (i = 0; i < n; i++) {
		cluster_key_online(&cl->conf, uids[i], key, sizeof(key));
		cluster_claim_value(&cl->conf, tokens[i], val, sizeof(val));
		release_add(b, key, strlen(key), val, strlen(val));
	}
	return release_end(b);
}

/* "P sweep": who sweeps the claims now. */
static void
sweep_key(const struct cluster *cl, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%ssweep", cl->conf.redis_prefix);
}

/* "P online:*": every claim, for SCAN ... MATCH. */
static void
claims_pattern(const struct cluster *cl, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%sonline:*", cl->conf.redis_prefix);
}

int
cluster_sweep_start(struct cluster *cl, int secs, char *cursor, size_t len)
{
	char key[CLUSTER_KEY_MAX];
	redisReply *r;
	int rc = -1;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	sweep_key(cl, key, sizeof(key));
	if ((r = redisCommand(cl->rc, "SET %s %s NX EX %d", key,
	    cl->conf.node_id, secs)) == NULL) {
		cluster_fail(cl);
		return -1;
	}
	if (r->type == REDIS_REPLY_STATUS)
		rc = 1;
	else if (r->type == REDIS_REPLY_NIL)
		rc = 0;
	freeReplyObject(r);
	if (rc == 1)
		(void)snprintf(cursor, len, "0");
	return rc;
}

void
cluster_sweep_hold(struct cluster *cl, int secs)
{
	char key[CLUSTER_KEY_MAX];
	redisReply *r;

	if (cl == NULL || cluster_connect(cl) == -1)
		return;
	sweep_key(cl, key, sizeof(key));
	if ((r = redisCommand(cl->rc, "EXPIRE %s %d", key, secs)) == NULL)
		cluster_fail(cl);
	else
		freeReplyObject(r);
}

int
cluster_sweep_step(struct cluster *cl, char *cursor, size_t len)
{
	char pattern[CLUSTER_KEY_MAX];
	redisReply *r;
	int rc = -1;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	claims_pattern(cl, pattern, sizeof(pattern));
	if ((r = redisCommand(cl->rc, "SCAN %s MATCH %s COUNT %d", cursor,
	    pattern, CLUSTER_SWEEP_COUNT)) == NULL) {
		cluster_fail(cl);
		return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->len < len) {
		(void)snprintf(cursor, len, "%s", r->element[0]->str);
		rc = strcmp(cursor, "0") == 0;
	}
	freeReplyObject(r);
	return rc;
}

long
cluster_release_node(struct cluster *cl)
{
	struct release_batch *b;
	char pattern[CLUSTER_KEY_MAX], mine[CLUSTER_KEY_MAX];
	char cursor[32] = "0";
	redisReply *r, *keys, *v, *e;
	size_t i, mlen;

	if (cl == NULL || cluster_connect(cl) == -1)
		return -1;
	claims_pattern(cl, pattern, sizeof(pattern));
	(void)snprintf(mine, sizeof(mine), "%s|", cl->conf.node_id);
	mlen = strlen(mine);
	b = release_begin(cl);
	b->expire = 1;
	do {
		/* A batch sent while scanning may have lost the
		 * connection. */
		if (cl->rc == NULL && cluster_connect(cl) == -1) {
			b->failed = 1;
			break;
		}
		r = redisCommand(cl->rc, "SCAN %s MATCH %s COUNT 1000", cursor,
		    pattern);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
		    r->elements != 2 ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			if (r != NULL)
				freeReplyObject(r);
			cluster_fail(cl);
			b->failed = 1;
			break;
		}
		(void)snprintf(cursor, sizeof(cursor), "%s",
		    r->element[0]->str);
		keys = r->element[1];
		/* The values of this page in one MGET: the claims to
		 * release are the ones that name this node. */
		if (keys->elements > 0) {
			const char **argv;
			size_t *argvlen;

			argv = malloc((keys->elements + 1) * sizeof(*argv));
			argvlen = malloc((keys->elements + 1) *
			    sizeof(*argvlen));
			if (argv == NULL || argvlen == NULL)
				fatalx("%s: out of memory", __func__);
			argv[0] = "MGET";
			argvlen[0] = 4;
			for (i = 0; i < keys->elements; i++) {
				argv[i + 1] = keys->element[i]->str;
				argvlen[i + 1] = keys->element[i]->len;
			}
			v = redisCommandArgv(cl->rc, (int)keys->elements + 1,
			    argv, argvlen);
			free(argv);
			free(argvlen);
			if (v == NULL || v->type != REDIS_REPLY_ARRAY ||
			    v->elements != keys->elements) {
				if (v != NULL)
					freeReplyObject(v);
				freeReplyObject(r);
				cluster_fail(cl);
				b->failed = 1;
				break;
			}
			for (i = 0; i < v->elements; i++) {
				e = v->element[i];
				if (e->type == REDIS_REPLY_STRING &&
				    e->len > mlen &&
				    memcmp(e->str, mine, mlen) == 0)
					release_add(b, keys->element[i]->str,
					    keys->element[i]->len, e->str,
					    e->len);
			}
			freeReplyObject(v);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return release_end(b);
}
