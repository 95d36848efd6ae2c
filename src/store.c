/*
 * store.c - MariaDB Connector/C behind prepared statements.
 *
 * One statement table (store_sql) and one executor (store_exec) that binds
 * parameters, reads every result column as text, and maps server errors
 * onto enum store_rc.  Results are read as text because every caller
 * either forwards them to JSON or parses one integer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "cluster.h"
#include "log.h"
#include "store.h"

enum stmt_id {
	ST_SCHEMA_VERSION,
	ST_USER_INSERT,
	ST_USER_GET,
	ST_FRIEND_ADD,
	ST_FRIEND_DEL,
	ST_FRIEND_LIST,
	ST_GROUP_INSERT,
	ST_GROUP_GET,
	ST_MEMBER_INSERT,
	ST_MEMBER_DELETE,
	ST_GROUP_LIST,
	ST_GROUP_MEMBERS,
	ST_OFFLINE_PUT,
	ST_OFFLINE_FETCH,
	ST_OFFLINE_DEL,
	ST_COUNT
};

static const char *const store_sql[ST_COUNT] = {
	[ST_SCHEMA_VERSION] = "SELECT MAX(version) FROM schema_version",
	[ST_USER_INSERT] = "INSERT INTO users (name, password) VALUES (?, ?)",
	[ST_USER_GET] = "SELECT name, password FROM users WHERE id = ?",
	[ST_FRIEND_ADD] = "INSERT INTO friends (userid, friendid) "
	    "VALUES (?, ?), (?, ?)",
	[ST_FRIEND_DEL] = "DELETE FROM friends WHERE (userid = ? AND "
	    "friendid = ?) OR (userid = ? AND friendid = ?)",
	[ST_FRIEND_LIST] = "SELECT u.id, u.name FROM friends f JOIN users u "
	    "ON u.id = f.friendid WHERE f.userid = ? ORDER BY u.id",
	[ST_GROUP_INSERT] = "INSERT INTO chatgroups (groupname, groupdesc) "
	    "VALUES (?, ?)",
	[ST_GROUP_GET] = "SELECT groupname FROM chatgroups WHERE id = ?",
	[ST_MEMBER_INSERT] = "INSERT INTO groupmembers (groupid, userid, "
	    "grouprole) VALUES (?, ?, ?)",
	[ST_MEMBER_DELETE] = "DELETE FROM groupmembers WHERE groupid = ? "
	    "AND userid = ?",
	[ST_GROUP_LIST] = "SELECT g.id, g.groupname, g.groupdesc, m.grouprole "
	    "FROM groupmembers m JOIN chatgroups g ON g.id = m.groupid "
	    "WHERE m.userid = ? ORDER BY g.id",
	[ST_GROUP_MEMBERS] = "SELECT u.id, u.name, m.grouprole FROM "
	    "groupmembers m JOIN users u ON u.id = m.userid WHERE "
	    "m.groupid = ? ORDER BY u.id",
	[ST_OFFLINE_PUT] = "INSERT INTO offlinemessages (userid, ord, message) "
	    "VALUES (?, ?, ?)",
	[ST_OFFLINE_FETCH] = "SELECT id, message FROM offlinemessages WHERE "
	    "userid = ? ORDER BY ord, id LIMIT ?",
	[ST_OFFLINE_DEL] = "DELETE FROM offlinemessages WHERE id = ? AND "
	    "userid = ?",
};

#define STORE_MAX_COLS 4
#define STORE_COL_INLINE 256

struct store {
	const struct conf *conf;
	MYSQL *db;
	MYSQL_STMT *stmt[ST_COUNT];
	time_t next_attempt;	/* no reconnect before this time */
	int down_logged;
	int in_tx;		/* inside START TRANSACTION */
	unsigned int last_err;	/* of the last failure (store_fail) */
	struct cluster *cluster;	/* this thread's Redis client */
	char err[768];
};

enum sval_type { SV_INT, SV_STR };

struct sval {
	enum sval_type type;
	long long i;
	const char *s;
	unsigned long len;
};

#define SV_I(v) { SV_INT, (long long)(v), NULL, 0 }
#define SV_S(v, l) { SV_STR, 0, (v), (unsigned long)(l) }

/* Called once per row with every column as NUL-terminated text (NULL for
 * SQL NULL); non-zero stops the fetch. */
typedef int (*store_row_fn)(void *arg, char **col, unsigned long *len);

struct store *
store_open(const struct conf *conf)
{
	struct store *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conf = conf;
	s->cluster = cluster_open(conf);
	return s;
}

static void
store_disconnect(struct store *s)
{
	int i;

	for (i = 0; i < ST_COUNT; i++) {
		if (s->stmt[i] != NULL)
			(void)mysql_stmt_close(s->stmt[i]);
		s->stmt[i] = NULL;
	}
	if (s->db != NULL)
		mysql_close(s->db);
	s->db = NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	store_disconnect(s);
	cluster_close(s->cluster);
	free(s);
}

struct cluster *
store_cluster(struct store *s)
{
	return s->cluster;
}

const char *
store_error(const struct store *s)
{
	return s->err;
}

static int
store_connect(struct store *s)
{
	const struct conf *c = s->conf;
	unsigned int timeout = (unsigned int)c->db_connect_timeout;
	unsigned int iotimeout = timeout * 2;
	time_t now = time(NULL);

	if (s->db != NULL)
		return STORE_OK;
	if (now < s->next_attempt)
		return STORE_UNAVAILABLE;
	if ((s->db = mysql_init(NULL)) == NULL) {
		(void)snprintf(s->err, sizeof(s->err), "mysql_init failed");
		return STORE_UNAVAILABLE;
	}
	(void)mysql_options(s->db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	(void)mysql_options(s->db, MYSQL_OPT_READ_TIMEOUT, &iotimeout);
	(void)mysql_options(s->db, MYSQL_OPT_WRITE_TIMEOUT, &iotimeout);
	(void)mysql_options(s->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/* With a socket, the host must be "localhost" or libmariadb uses
	 * TCP to db_host regardless. */
	if (mysql_real_connect(s->db, c->db_socket[0] != '\0' ? "localhost" :
	    c->db_host, c->db_user,
	    c->db_password, c->db_name, (unsigned int)c->db_port,
	    c->db_socket[0] != '\0' ? c->db_socket : NULL, 0) == NULL) {
		(void)snprintf(s->err, sizeof(s->err), "connect to %s:%d: %s",
		    c->db_socket[0] ? c->db_socket : c->db_host, c->db_port,
		    mysql_error(s->db));
		mysql_close(s->db);
		s->db = NULL;
		s->next_attempt = now + c->db_retry_interval;
		if (!s->down_logged)
			log_warnx("database unavailable: %s (retrying every "
			    "%d s, db_retry_interval)", s->err,
			    c->db_retry_interval);
		s->down_logged = 1;
		return STORE_UNAVAILABLE;
	}
	if (s->down_logged)
		log_info("database connection restored");
	s->down_logged = 0;
	return STORE_OK;
}

static int
store_lost(unsigned int err)
{
	return err == CR_SERVER_LOST || err == CR_SERVER_GONE_ERROR ||
	    err == CR_CONNECTION_ERROR || err == CR_CONN_HOST_ERROR ||
	    err == CR_COMMANDS_OUT_OF_SYNC || err == ER_CONNECTION_KILLED;
}

/* Map a server error onto a store_rc, disconnecting on a lost link. */
static int
store_fail(struct store *s, unsigned int err, const char *msg)
{
	(void)snprintf(s->err, sizeof(s->err), "%s", msg);
	s->last_err = err;
	switch (err) {
	case ER_DUP_ENTRY:
		return STORE_DUP;
	case ER_NO_REFERENCED_ROW:
	case ER_NO_REFERENCED_ROW_2:
		return STORE_NOREF;
	case ER_NO_SUCH_TABLE:
		return STORE_NOTFOUND;
	case ER_LOCK_DEADLOCK:
		/* Rolled back whole (the statement, or the transaction it
		 * was in): store_exec or store_in_tx runs it again. */
		log_debug("database: %s", msg);
		return STORE_UNAVAILABLE;
	default:
		break;
	}
	log_warnx("database error %u: %s", err, msg);
	if (store_lost(err))
		store_disconnect(s);
	return STORE_UNAVAILABLE;
}

static int
store_exec_once(struct store *s, enum stmt_id id, const struct sval *in,
    int nin, store_row_fn fn, void *arg, unsigned long long *insert_id,
    unsigned long long *affected)
{
	MYSQL_BIND pb[4], rb[STORE_MAX_COLS];
	char inl[STORE_MAX_COLS][STORE_COL_INLINE];
	char *col[STORE_MAX_COLS];
	unsigned long len[STORE_MAX_COLS];
	my_bool isnull[STORE_MAX_COLS], trunc[STORE_MAX_COLS];
	MYSQL_STMT *st;
	MYSQL_RES *meta = NULL;
	unsigned int ncols = 0, i;
	int rc = STORE_OK, frc;

	s->last_err = 0;
	if ((rc = store_connect(s)) != STORE_OK)
		return rc;
	if ((st = s->stmt[id]) == NULL) {
		if ((st = mysql_stmt_init(s->db)) == NULL)
			return store_fail(s, mysql_errno(s->db),
			    mysql_error(s->db));
		if (mysql_stmt_prepare(st, store_sql[id],
		    strlen(store_sql[id])) != 0) {
			rc = store_fail(s, mysql_stmt_errno(st),
			    mysql_stmt_error(st));
			/* After store_fail: a lost link was closed first, which
			 * detaches st, so closing it sends nothing. */
			(void)mysql_stmt_close(st);
			return rc;
		}
		s->stmt[id] = st;
	}
	memset(pb, 0, sizeof(pb));
	for (i = 0; i < (unsigned int)nin; i++) {
		if (in[i].type == SV_INT) {
			pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
			pb[i].buffer = (void *)&in[i].i;
		} else {
			pb[i].buffer_type = MYSQL_TYPE_STRING;
			pb[i].buffer = (void *)in[i].s;
			pb[i].buffer_length = in[i].len;
			pb[i].length = (unsigned long *)&in[i].len;
		}
	}
	if ((nin > 0 && mysql_stmt_bind_param(st, pb) != 0) ||
	    mysql_stmt_execute(st) != 0)
		goto fail;
	if ((meta = mysql_stmt_result_metadata(st)) != NULL) {
		ncols = mysql_num_fields(meta);
		mysql_free_result(meta);
		if (ncols > STORE_MAX_COLS)
			fatalx("%s: statement %d has %u columns", __func__,
			    id, ncols);
		memset(rb, 0, sizeof(rb));
		for (i = 0; i < ncols; i++) {
			rb[i].buffer_type = MYSQL_TYPE_STRING;
			rb[i].buffer = inl[i];
			rb[i].buffer_length = STORE_COL_INLINE;
			rb[i].length = &len[i];
			rb[i].is_null = &isnull[i];
			rb[i].error = &trunc[i];
		}
		if (mysql_stmt_bind_result(st, rb) != 0)
			goto fail;
		for (;;) {
			frc = mysql_stmt_fetch(st);
			if (frc == MYSQL_NO_DATA)
				break;
			if (frc == 1)
				goto fail;
			for (i = 0; i < ncols; i++) {
				col[i] = inl[i];
				if (isnull[i]) {
					col[i] = NULL;
					continue;
				}
				if (len[i] < STORE_COL_INLINE) {
					inl[i][len[i]] = '\0';
					continue;
				}
				/* Longer than the inline buffer: fetch whole. */
				if ((col[i] = malloc(len[i] + 1)) == NULL)
					fatal("%s: malloc", __func__);
				{
					MYSQL_BIND b;

					memset(&b, 0, sizeof(b));
					b.buffer_type = MYSQL_TYPE_STRING;
					b.buffer = col[i];
					b.buffer_length = len[i] + 1;
					if (mysql_stmt_fetch_column(st, &b, i,
					    0) != 0) {
						free(col[i]);
						col[i] = NULL;
						goto fail;
					}
				}
				col[i][len[i]] = '\0';
			}
			frc = fn != NULL ? fn(arg, col, len) : 0;
			for (i = 0; i < ncols; i++)
				if (col[i] != NULL && col[i] != inl[i])
					free(col[i]);
			if (frc != 0)
				break;
		}
	}
	if (insert_id != NULL)
		*insert_id = mysql_stmt_insert_id(st);
	if (affected != NULL)
		*affected = mysql_stmt_affected_rows(st);
	(void)mysql_stmt_free_result(st);
	(void)mysql_stmt_reset(st);
	return STORE_OK;
fail:
	{
		unsigned int e = mysql_stmt_errno(st);
		char msg[sizeof(s->err)];

		/* Before the reset, which clears it. */
		(void)snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
		if (!store_lost(e)) {
			(void)mysql_stmt_free_result(st);
			(void)mysql_stmt_reset(st);
		}
		return store_fail(s, e, msg);
	}
}

/*
 * Run one prepared statement.  A statement that fails because the link was
 * lost (the server restarted, or closed an idle connection) is retried once
 * on a fresh connection; that is safe because nothing was committed.  So
 * is one InnoDB chose as a deadlock victim (two users adding each other
 * at once insert the same two rows in opposite orders): it was rolled
 * back whole, and run again it sees what the other committed.  Inside a
 * transaction neither is retried here: the whole transaction is gone, and
 * store_in_tx runs all of it again after a deadlock.
 */
#define STORE_DEADLOCK_TRIES	3

/* After a failure: 1 when it was a deadlock, to be run again. */
static int
store_deadlock_again(struct store *s, int *deadlocks)
{
	if (s->last_err != ER_LOCK_DEADLOCK)
		return 0;
	if (++*deadlocks < STORE_DEADLOCK_TRIES)
		return 1;
	log_warnx("database: deadlock %d times in a row: %s", *deadlocks,
	    s->err);
	return 0;
}

static int
store_exec(struct store *s, enum stmt_id id, const struct sval *in, int nin,
    store_row_fn fn, void *arg, unsigned long long *insert_id,
    unsigned long long *affected)
{
	int rc, deadlocks = 0, relinked = 0;

	for (;;) {
		rc = store_exec_once(s, id, in, nin, fn, arg, insert_id,
		    affected);
		if (rc != STORE_UNAVAILABLE || s->in_tx)
			return rc;
		if (store_lost(s->last_err) && !relinked) {
			relinked = 1;
			s->next_attempt = 0;
			continue;
		}
		if (!store_deadlock_again(s, &deadlocks))
			return rc;
	}
}

/*
 * Transactions: plain statements without user data, so not prepared.  A
 * link found lost by START TRANSACTION had run nothing of it: connect
 * again once, as store_exec does outside a transaction (a job thread's
 * connection killed by the server, wait_timeout).
 */
static int
store_tx(struct store *s, const char *what)
{
	int start = strcmp(what, "START TRANSACTION") == 0, tries, rc;
	unsigned int err;

	for (tries = 0; ; tries++) {
		if ((rc = store_connect(s)) != STORE_OK)
			return rc;
		s->in_tx = start;
		if (mysql_query(s->db, what) == 0)
			return STORE_OK;
		s->in_tx = 0;
		err = mysql_errno(s->db);
		rc = store_fail(s, err, mysql_error(s->db));
		if (!start || tries > 0 || !store_lost(err))
			return rc;
		s->next_attempt = 0;
	}
}

static void
store_rollback(struct store *s)
{
	s->in_tx = 0;
	if (s->db != NULL && mysql_query(s->db, "ROLLBACK") != 0)
		(void)store_fail(s, mysql_errno(s->db), mysql_error(s->db));
}

/*
 * Run body(s, arg) as one transaction, committed when it returns STORE_OK
 * and rolled back otherwise.  InnoDB rolls a deadlock victim's transaction
 * back whole (a group created while another transaction holds its
 * creator's row and waits for the new group's), so all of it runs again,
 * as store_exec runs a single statement again.  body must start from
 * scratch each time.
 */
static int
store_in_tx(struct store *s, int (*body)(struct store *, void *), void *arg)
{
	int rc, deadlocks = 0;

	do {
		if ((rc = store_tx(s, "START TRANSACTION")) != STORE_OK)
			return rc;
		if ((rc = body(s, arg)) == STORE_OK &&
		    (rc = store_tx(s, "COMMIT")) == STORE_OK)
			return STORE_OK;
		/* After a deadlock a no-op; its own failure replaces
		 * last_err, and nothing is run again. */
		store_rollback(s);
	} while (store_deadlock_again(s, &deadlocks));
	return rc;
}

static int
row_first_int(void *arg, char **col, unsigned long *len)
{
	long long *out = arg;

	*out = col[0] != NULL ? strtoll(col[0], NULL, 10) : 0;
	return 1;
}

int
store_schema_version(struct store *s, int *version)
{
	long long v = -1;
	int rc;

	rc = store_exec(s, ST_SCHEMA_VERSION, NULL, 0, row_first_int, &v,
	    NULL, NULL);
	if (rc == STORE_NOTFOUND) {
		*version = 0;	/* no schema_version table: not migrated */
		return STORE_OK;
	}
	if (rc != STORE_OK)
		return rc;
	*version = (int)v;
	return STORE_OK;
}

int
store_user_create(struct store *s, const char *name, const char *hash,
    uint32_t *id)
{
	struct sval in[] = { SV_S(name, strlen(name)), SV_S(hash, strlen(hash)) };
	unsigned long long iid = 0;
	int rc;

	rc = store_exec(s, ST_USER_INSERT, in, 2, NULL, NULL, &iid, NULL);
	if (rc == STORE_OK)
		*id = (uint32_t)iid;
	return rc;
}

struct user_get_arg {
	char *name, *hash;
	size_t namelen, hashlen;
	int found;
};

static int
row_user_get(void *arg, char **col, unsigned long *len)
{
	struct user_get_arg *a = arg;

	(void)snprintf(a->name, a->namelen, "%s", col[0] ? col[0] : "");
	if (a->hash != NULL)
		(void)snprintf(a->hash, a->hashlen, "%s", col[1] ? col[1] : "");
	a->found = 1;
	return 1;
}

int
store_user_get(struct store *s, uint32_t id, char *name, size_t namelen,
    char *hash, size_t hashlen)
{
	struct sval in[] = { SV_I(id) };
	struct user_get_arg a = { name, hash, namelen, hashlen, 0 };
	int rc;

	if ((rc = store_exec(s, ST_USER_GET, in, 1, row_user_get, &a, NULL,
	    NULL)) != STORE_OK)
		return rc;
	return a.found ? STORE_OK : STORE_NOTFOUND;
}

int
store_friend_add(struct store *s, uint32_t uid, uint32_t friendid)
{
	struct sval in[] = { SV_I(uid), SV_I(friendid), SV_I(friendid),
	    SV_I(uid) };

	return store_exec(s, ST_FRIEND_ADD, in, 4, NULL, NULL, NULL, NULL);
}

int
store_friend_del(struct store *s, uint32_t uid, uint32_t friendid)
{
	struct sval in[] = { SV_I(uid), SV_I(friendid), SV_I(friendid),
	    SV_I(uid) };
	unsigned long long n = 0;
	int rc;

	if ((rc = store_exec(s, ST_FRIEND_DEL, in, 4, NULL, NULL, NULL,
	    &n)) != STORE_OK)
		return rc;
	return n > 0 ? STORE_OK : STORE_NOTFOUND;
}

struct cb_arg {
	void *fn;
	void *arg;
};

static int
row_user(void *arg, char **col, unsigned long *len)
{
	struct cb_arg *a = arg;

	return ((store_user_fn)a->fn)(a->arg,
	    (uint32_t)strtoul(col[0], NULL, 10), col[1] ? col[1] : "");
}

int
store_friend_list(struct store *s, uint32_t uid, store_user_fn fn, void *arg)
{
	struct sval in[] = { SV_I(uid) };
	struct cb_arg a = { (void *)fn, arg };

	return store_exec(s, ST_FRIEND_LIST, in, 1, row_user, &a, NULL, NULL);
}

struct group_create {
	const char *name, *desc;
	uint32_t creator;
	unsigned long long gid;
};

static int
group_create_tx(struct store *s, void *arg)
{
	struct group_create *g = arg;
	struct sval gin[] = { SV_S(g->name, strlen(g->name)),
	    SV_S(g->desc, strlen(g->desc)) };
	struct sval min[] = { SV_I(0), SV_I(g->creator),
	    SV_S("creator", 7) };
	int rc;

	g->gid = 0;
	if ((rc = store_exec(s, ST_GROUP_INSERT, gin, 2, NULL, NULL, &g->gid,
	    NULL)) != STORE_OK)
		return rc;
	min[0].i = (long long)g->gid;
	return store_exec(s, ST_MEMBER_INSERT, min, 3, NULL, NULL, NULL, NULL);
}

int
store_group_create(struct store *s, const char *name, const char *desc,
    uint32_t creator, uint32_t *gid)
{
	struct group_create g = { name, desc, creator, 0 };
	int rc;

	if ((rc = store_in_tx(s, group_create_tx, &g)) == STORE_OK)
		*gid = (uint32_t)g.gid;
	return rc;
}

struct exists_arg {
	int found;
};

static int
row_found(void *arg, char **col, unsigned long *len)
{
	((struct exists_arg *)arg)->found = 1;
	return 1;
}

static int
store_group_check(struct store *s, uint32_t gid)
{
	struct sval in[] = { SV_I(gid) };
	struct exists_arg a = { 0 };
	int rc;

	if ((rc = store_exec(s, ST_GROUP_GET, in, 1, row_found, &a, NULL,
	    NULL)) != STORE_OK)
		return rc;
	return a.found ? STORE_OK : STORE_NOTFOUND;
}

int
store_group_join(struct store *s, uint32_t gid, uint32_t uid)
{
	struct sval in[] = { SV_I(gid), SV_I(uid), SV_S("normal", 6) };
	int rc;

	rc = store_exec(s, ST_MEMBER_INSERT, in, 3, NULL, NULL, NULL, NULL);
	/* The foreign key tells a missing group (the user exists). */
	return rc == STORE_NOREF ? STORE_NOTFOUND : rc;
}

int
store_group_quit(struct store *s, uint32_t gid, uint32_t uid)
{
	struct sval in[] = { SV_I(gid), SV_I(uid) };
	unsigned long long n = 0;
	int rc;

	if ((rc = store_exec(s, ST_MEMBER_DELETE, in, 2, NULL, NULL, NULL,
	    &n)) != STORE_OK)
		return rc;
	if (n > 0)
		return STORE_OK;
	rc = store_group_check(s, gid);
	return rc == STORE_OK ? STORE_NOREF : rc;
}

static int
row_group(void *arg, char **col, unsigned long *len)
{
	struct cb_arg *a = arg;

	return ((store_group_fn)a->fn)(a->arg,
	    (uint32_t)strtoul(col[0], NULL, 10), col[1] ? col[1] : "",
	    col[2] ? col[2] : "", col[3] ? col[3] : "normal");
}

int
store_group_list(struct store *s, uint32_t uid, store_group_fn fn, void *arg)
{
	struct sval in[] = { SV_I(uid) };
	struct cb_arg a = { (void *)fn, arg };

	return store_exec(s, ST_GROUP_LIST, in, 1, row_group, &a, NULL, NULL);
}

static int
row_member(void *arg, char **col, unsigned long *len)
{
	struct cb_arg *a = arg;

	return ((store_member_fn)a->fn)(a->arg,
	    (uint32_t)strtoul(col[0], NULL, 10), col[1] ? col[1] : "",
	    col[2] ? col[2] : "normal");
}

int
store_group_members(struct store *s, uint32_t gid, store_member_fn fn,
    void *arg)
{
	struct sval in[] = { SV_I(gid) };
	struct cb_arg a = { (void *)fn, arg };
	int rc;

	if ((rc = store_group_check(s, gid)) != STORE_OK)
		return rc;
	return store_exec(s, ST_GROUP_MEMBERS, in, 1, row_member, &a, NULL,
	    NULL);
}

int
store_offline_put(struct store *s, uint32_t uid, uint64_t ord,
    const char *text, size_t len)
{
	struct sval in[] = { SV_I(uid), SV_I(ord), SV_S(text, len) };

	return store_exec(s, ST_OFFLINE_PUT, in, 3, NULL, NULL, NULL, NULL);
}

static int
row_offline(void *arg, char **col, unsigned long *len)
{
	struct cb_arg *a = arg;

	return ((store_offline_fn)a->fn)(a->arg,
	    strtoull(col[0], NULL, 10), col[1] ? col[1] : "",
	    col[1] ? len[1] : 0);
}

int
store_offline_fetch(struct store *s, uint32_t uid, int limit,
    store_offline_fn fn, void *arg)
{
	struct sval in[] = { SV_I(uid), SV_I(limit) };
	struct cb_arg a = { (void *)fn, arg };

	return store_exec(s, ST_OFFLINE_FETCH, in, 2, row_offline, &a, NULL,
	    NULL);
}

struct offline_delete {
	uint32_t uid;
	const uint64_t *ids;
	size_t n;
};

static int
offline_delete_tx(struct store *s, void *arg)
{
	struct offline_delete *d = arg;
	size_t i;
	int rc = STORE_OK;

	for (i = 0; i < d->n && rc == STORE_OK; i++) {
		struct sval in[] = { SV_I(d->ids[i]), SV_I(d->uid) };

		rc = store_exec(s, ST_OFFLINE_DEL, in, 2, NULL, NULL, NULL,
		    NULL);
	}
	return rc;
}

int
store_offline_delete(struct store *s, uint32_t uid, const uint64_t *ids,
    size_t n)
{
	struct offline_delete d = { uid, ids, n };

	if (n == 0)
		return STORE_OK;
	return store_in_tx(s, offline_delete_tx, &d);
}
