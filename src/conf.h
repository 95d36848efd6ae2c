/*
 * conf.h - chatd's configuration: one struct, loaded from an INI-style file
 * by libinih against a table of keys with type, default and range
 * (conf.c).  Every key is documented in chatd.conf(5).
 */
#ifndef CHATD_CONF_H
#define CHATD_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_STR_MAX 256

struct conf {
	/* [server] */
	char listen[CONF_STR_MAX];	/* host:port */
	char node_id[CONF_STR_MAX];	/* default: conf_node_id_from */
	int node_id_auto;		/* node_id was derived from listen */
	int workers;			/* 0 = number of CPUs */
	int max_connections;		/* per worker */
	int max_frame;			/* bytes */
	int max_output;			/* bytes queued per connection */
	int max_message;		/* bytes of a chat message text */
	int auth_timeout;		/* seconds before login */
	int idle_timeout;		/* seconds without traffic after login */
	int job_threads;		/* per worker */
	int job_queue_max;		/* pending jobs per worker */
	int offline_batch;		/* offline messages inside LOGIN_ACK */
	int hash_opslimit;		/* argon2id passes */
	int hash_memlimit_kib;		/* argon2id memory, KiB */
	int hash_concurrency;		/* hashes at once on this host,
					 * 0 = online CPUs - 1 */
	int respawn_delay_max;		/* seconds, cap of respawn backoff */
	int shutdown_timeout;		/* seconds to wait for workers */
	char log_level[16];
	char presence_shm[CONF_STR_MAX];
	int presence_capacity;
	int rate_limit;			/* requests per second, 0 = off */
	int rate_burst;			/* requests at once */
	int login_fail_max;		/* per user before delays, 0 = off */
	int login_fail_max_addr;	/* per source address, 0 = off */
	int login_fail_window;		/* seconds failures are remembered */
	int login_delay_max;		/* seconds, cap of the delay */
	int max_conns_per_addr;		/* per worker, 0 = unlimited */
	char user[CONF_STR_MAX];	/* drop to this user (root only) */
	char group[CONF_STR_MAX];
	char control_socket[CONF_STR_MAX];	/* empty: none */
	char control_mode[8];			/* octal */
	/* [database] */
	char db_host[CONF_STR_MAX];
	int db_port;
	char db_socket[CONF_STR_MAX];
	char db_name[CONF_STR_MAX];
	char db_user[CONF_STR_MAX];
	char db_password[CONF_STR_MAX];
	int db_connect_timeout;		/* seconds */
	int db_retry_interval;		/* seconds between reconnects */
	char spool_dir[CONF_STR_MAX];	/* messages waiting for the database,
					 * on disk (spool.h); empty: none */
	/* [redis] */
	char redis_host[CONF_STR_MAX];	/* empty and no socket: one host */
	int redis_port;
	char redis_socket[CONF_STR_MAX];
	char redis_prefix[CONF_STR_MAX];	/* key and channel prefix */
	int presence_ttl;		/* seconds a node's claim lives */
	int redis_retry_max;		/* seconds, cap of reconnect backoff */
	int redis_timeout;		/* seconds, blocking calls */
};

/*
 * What a reload (SIGHUP) does with a key's new value; chatd.conf(5),
 * "Reloading", lists the keys of each kind.
 */
enum conf_reload {
	CONF_LIVE,	/* the running workers take it, connections stay */
	CONF_WORKERS,	/* new workers take it (their database and Redis
			 * links are made with it); connections close */
	CONF_RESTART,	/* shapes what the master holds: only a restart
			 * applies it */
};

/* Fill c with every default. */
void conf_defaults(struct conf *c);
/*
 * Load path over the defaults into c.  On failure returns -1 with
 * "file:line: reason" in err; c is then unspecified (use a scratch copy
 * when reloading).
 */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);
/* 1 when a Redis server is configured (cluster mode), 0 for one host. */
int conf_redis_enabled(const struct conf *c);
/* Resolve derived values (workers=0, hash_concurrency=0, empty node_id).
 * 0 or -1 with err. */
int conf_finish(struct conf *c, char *err, size_t errlen);
/* Set node_id as derived from listen: listen itself, or, for a wildcard
 * address (*, 0.0.0.0, ::, [::] or none), the host name and the port. */
void conf_node_id_from(struct conf *c, const char *listen);

/* Called by conf_compare for each key whose value differs. */
typedef void conf_change_fn(const char *key, enum conf_reload how,
    void *arg);
/* The strongest enum conf_reload among the keys whose values differ
 * between a and b (fn, when not NULL, hears of each); -1 when none does. */
int conf_compare(const struct conf *a, const struct conf *b,
    conf_change_fn *fn, void *arg);
/* Copy from's values of the keys of kind `how` into to, key by key (a
 * thread reading to's other keys meanwhile reads nothing written); the
 * number of values that changed. */
int conf_copy_keys(struct conf *to, const struct conf *from,
    enum conf_reload how);

/*
 * The configuration the master publishes for its workers to apply on a
 * reload: one shared mapping, made before the workers are forked, with
 * one writer (the master) and a sequence count, so a reader never keeps
 * a half-written copy.  Each publication has a new generation.
 */
struct conf_share;

/* A share holding c and log level `level` as generation 1, or NULL. */
struct conf_share *conf_share_create(const struct conf *c, int level);
void conf_share_destroy(struct conf_share *sh);
/* Master: publish c and level; returns the new generation. */
uint64_t conf_share_publish(struct conf_share *sh, const struct conf *c,
    int level);
/* Worker: a consistent copy into *c and *level; returns its generation,
 * or 0 when no consistent copy could be had (nothing usable in *c). */
uint64_t conf_share_read(const struct conf_share *sh, struct conf *c,
    int *level);

#endif
