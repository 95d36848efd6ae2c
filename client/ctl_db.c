/*
 * ctl_db.c - chatctl db: create chatd's database and user, apply the
 * schema migrations, report the schema version before and after.
 *
 *   chatctl [-c chatd.conf] db status
 *   chatctl [-c chatd.conf] db migrate [-m dir]
 *   chatctl [-c chatd.conf] db init [-m dir] [-u admin] [-S socket]
 *
 * Database settings come from chatd.conf, so chatctl and chatd agree.
 * Migrations are the files NNNN_*.sql of the migrations directory; each
 * one records its own version in schema_version, and only those above the
 * current version are applied, in order, so running it again is harmless.
 * init connects as an administrator (root over the local socket by
 * default; the password, if any, from CHATCTL_DB_ADMIN_PASSWORD), creates
 * the database and the user if missing, then migrates as that user.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "chatctl.h"
#include "conf.h"
#include "store.h"

const char *ctl_db_conf = SYSCONFDIR "/chatd/chatd.conf";

static void __attribute__((noreturn))
db_usage(void)
{
	(void)fprintf(stderr, "usage: chatctl [-c chatd.conf] db status\n"
	    "       chatctl [-c chatd.conf] db migrate [-m dir]\n"
	    "       chatctl [-c chatd.conf] db init [-m dir] [-u admin] "
	    "[-S socket]\n");
	exit(2);
}

static MYSQL *
db_connect(const struct conf *c, const char *user, const char *password,
    const char *socket, int use_db)
{
	unsigned int timeout = (unsigned int)c->db_connect_timeout;
	const char *sock = socket != NULL ? socket :
	    c->db_socket[0] != '\0' ? c->db_socket : NULL;
	MYSQL *db;

	if ((db = mysql_init(NULL)) == NULL)
		errx(1, "mysql_init failed");
	(void)mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	(void)mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (mysql_real_connect(db, sock != NULL ? "localhost" : c->db_host,
	    user, password, use_db ? c->db_name : NULL,
	    (unsigned int)c->db_port, sock, CLIENT_MULTI_STATEMENTS) == NULL)
		errx(1, "connect to the database as %s: %s", user,
		    mysql_error(db));
	return db;
}

/* Run every statement of sql; errors name the file. */
static void
db_exec(MYSQL *db, const char *what, const char *sql)
{
	int status;

	if (mysql_real_query(db, sql, strlen(sql)) != 0)
		errx(1, "%s: %s", what, mysql_error(db));
	do {
		MYSQL_RES *res = mysql_store_result(db);

		if (res != NULL)
			mysql_free_result(res);
		else if (mysql_field_count(db) != 0)
			errx(1, "%s: %s", what, mysql_error(db));
		if ((status = mysql_next_result(db)) > 0)
			errx(1, "%s: %s", what, mysql_error(db));
	} while (status == 0);
}

/* The schema version, 0 when chatd's tables are not there. */
static int
db_version(MYSQL *db)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	int v = 0;

	if (mysql_query(db, "SELECT MAX(version) FROM schema_version") != 0) {
		if (mysql_errno(db) == ER_NO_SUCH_TABLE)
			return 0;
		errx(1, "read the schema version: %s", mysql_error(db));
	}
	if ((res = mysql_store_result(db)) == NULL)
		errx(1, "read the schema version: %s", mysql_error(db));
	if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL)
		v = atoi(row[0]);
	mysql_free_result(res);
	return v;
}

static int
migration_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 9 && isdigit((unsigned char)d->d_name[0]) &&
	    strcmp(d->d_name + n - 4, ".sql") == 0;
}

static char *
read_file(const char *path)
{
	FILE *fp;
	char *buf;
	long len;

	if ((fp = fopen(path, "r")) == NULL)
		err(1, "%s", path);
	if (fseek(fp, 0, SEEK_END) == -1 || (len = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) == -1)
		err(1, "%s", path);
	if ((buf = malloc((size_t)len + 1)) == NULL)
		errx(1, "out of memory");
	if (fread(buf, 1, (size_t)len, fp) != (size_t)len)
		err(1, "%s", path);
	buf[len] = '\0';
	(void)fclose(fp);
	return buf;
}

/* Apply every migration above the current version; returns the count. */
static int
db_migrate(MYSQL *db, const char *dir)
{
	struct dirent **list;
	char path[4096], *sql;
	int n, i, applied = 0, v;

	if ((n = scandir(dir, &list, migration_filter, alphasort)) < 0)
		err(1, "migrations directory %s", dir);
	for (i = 0; i < n; i++) {
		v = atoi(list[i]->d_name);
		if (v > db_version(db)) {
			(void)snprintf(path, sizeof(path), "%s/%s", dir,
			    list[i]->d_name);
			sql = read_file(path);
			db_exec(db, path, sql);
			free(sql);
			if (db_version(db) < v)
				errx(1, "%s did not record schema version %d",
				    path, v);
			(void)printf("applied %s\n", list[i]->d_name);
			applied++;
		}
		free(list[i]);
	}
	free(list);
	return applied;
}

/* Identifiers cannot be bound as parameters: allow only plain names. */
static void
check_ident(const char *what, const char *s)
{
	const char *p;

	if (*s == '\0' || strlen(s) > 64)
		errx(1, "%s \"%s\": empty or too long", what, s);
	for (p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			errx(1, "%s \"%s\": use letters, digits and _ only",
			    what, s);
}

static void
db_init(const struct conf *c, const char *admin, const char *socket)
{
	const char *pw = getenv("CHATCTL_DB_ADMIN_PASSWORD");
	const char *hosts[] = { "localhost", "127.0.0.1", "%" };
	size_t nhosts;
	char sql[2048], esc[2 * CONF_STR_MAX + 1];
	MYSQL *db;
	size_t i;

	check_ident("db_name", c->db_name);
	check_ident("db_user", c->db_user);
	db = db_connect(c, admin, pw, socket, 0);
	(void)mysql_real_escape_string(db, esc, c->db_password,
	    strlen(c->db_password));
	(void)snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS `%s` "
	    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", c->db_name);
	db_exec(db, "create the database", sql);
	/* Local connections, and remote ones when db_host is another host. */
	nhosts = c->db_socket[0] != '\0' || strcmp(c->db_host, "127.0.0.1") ==
	    0 || strcmp(c->db_host, "localhost") == 0 ? 2 : 3;
	for (i = 0; i < nhosts; i++) {
		(void)snprintf(sql, sizeof(sql), "CREATE USER IF NOT EXISTS "
		    "'%s'@'%s' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO "
		    "'%s'@'%s'", c->db_user, hosts[i], esc, c->db_name,
		    c->db_user, hosts[i]);
		db_exec(db, "create the user", sql);
	}
	mysql_close(db);
	(void)printf("database %s and user %s are ready\n", c->db_name,
	    c->db_user);
}

int
ctl_db(int argc, char **argv)
{
	const char *dir = DATADIR "/migrations", *admin = "root";
	const char *socket = NULL, *what;
	struct conf c;
	char errbuf[512];
	MYSQL *db;
	int ch, before, after;

	if (argc < 2)
		db_usage();
	what = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "m:u:S:")) != -1) {
		switch (ch) {
		case 'm':
			dir = optarg;
			break;
		case 'u':
			admin = optarg;
			break;
		case 'S':
			socket = optarg;
			break;
		default:
			db_usage();
		}
	}
	if (optind != argc)
		db_usage();
	conf_defaults(&c);
	if (conf_load(&c, ctl_db_conf, errbuf, sizeof(errbuf)) == -1)
		errx(1, "%s", errbuf);
	if (mysql_library_init(0, NULL, NULL) != 0)
		errx(1, "mysql_library_init failed");
	if (strcmp(what, "init") == 0)
		db_init(&c, admin, socket);
	else if (strcmp(what, "status") != 0 && strcmp(what, "migrate") != 0)
		db_usage();
	db = db_connect(&c, c.db_user, c.db_password, NULL, 1);
	before = db_version(db);
	(void)printf("schema version %d (this chatd needs %d)\n", before,
	    STORE_SCHEMA_VERSION);
	if (strcmp(what, "status") == 0) {
		mysql_close(db);
		mysql_library_end();
		return before == STORE_SCHEMA_VERSION ? 0 : 1;
	}
	(void)db_migrate(db, dir);
	after = db_version(db);
	(void)printf("schema version %d after migrating\n", after);
	mysql_close(db);
	mysql_library_end();
	if (after != STORE_SCHEMA_VERSION)
		errx(1, "schema version %d, but this chatd needs %d", after,
		    STORE_SCHEMA_VERSION);
	return 0;
}
