/*
 * check_spool.c - unit tests of the workers' spool files (src/spool.c):
 * records read back whole and in order by the worker that adopts a file,
 * which then removes it; a live worker's file (locked) and the files of
 * another database (key) left alone; an emptied file; a record cut short
 * by a crash ending the file; a full disk (RLIMIT_FSIZE).  Each test works
 * in a directory of its own.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

static char dir[64];

static void
setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/check_spool.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			(void)snprintf(path, sizeof(path), "%s/%s", dir,
			    de->d_name);
			(void)unlink(path);
		}
		(void)closedir(d);
	}
	(void)rmdir(dir);
}

/* Files in dir. */
static int
files(void)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	(void)closedir(d);
	return n;
}

/* What spool_adopt handed over. */
#define GOT_MAX 16
struct got {
	int n;
	uint64_t ord[GOT_MAX];
	uint32_t nuids[GOT_MAX], uid0[GOT_MAX], uidlast[GOT_MAX];
	char text[GOT_MAX][64];
};

static void
collect(void *arg, const struct spool_rec *r)
{
	struct got *g = arg;

	ck_assert_int_lt(g->n, GOT_MAX);
	g->ord[g->n] = r->ord;
	g->nuids[g->n] = r->n;
	g->uid0[g->n] = r->uids[0];
	g->uidlast[g->n] = r->uids[r->n - 1];
	ck_assert_uint_lt(r->len, sizeof(g->text[0]));
	memcpy(g->text[g->n], r->text, r->len);
	g->text[g->n][r->len] = '\0';
	ck_assert_uint_eq(strlen(r->text), r->len);
	g->n++;
}

/* Append a record of n recipients first..first+n-1. */
static void
put(struct spool *sp, uint64_t ord, uint32_t first, uint32_t n,
    const char *text)
{
	uint32_t uids[8];
	struct spool_rec r;
	uint32_t i;

	ck_assert_uint_le(n, 8);
	for (i = 0; i < n; i++)
		uids[i] = first + i;
	r.ord = ord;
	r.n = n;
	r.uids = uids;
	r.len = strlen(text);
	r.text = text;
	ck_assert_int_eq(spool_append(sp, &r), 0);
}

START_TEST(test_adopt_in_order)
{
	struct spool *a, *b;
	struct got g;

	ck_assert_ptr_nonnull(a = spool_open(dir, "k1"));
	put(a, 100, 7, 1, "{\"msgid\":6,\"msg\":\"one\"}");
	put(a, 200, 10, 3, "{\"msgid\":10,\"msg\":\"two\"}");
	put(a, 150, 4, 1, "");
	spool_close(a, 1);
	ck_assert_int_eq(files(), 1);

	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 3);
	ck_assert_int_eq(g.n, 3);
	ck_assert_uint_eq(g.ord[0], 100);
	ck_assert_uint_eq(g.nuids[0], 1);
	ck_assert_uint_eq(g.uid0[0], 7);
	ck_assert_str_eq(g.text[0], "{\"msgid\":6,\"msg\":\"one\"}");
	ck_assert_uint_eq(g.ord[1], 200);
	ck_assert_uint_eq(g.nuids[1], 3);
	ck_assert_uint_eq(g.uid0[1], 10);
	ck_assert_uint_eq(g.uidlast[1], 12);
	ck_assert_str_eq(g.text[1], "{\"msgid\":10,\"msg\":\"two\"}");
	ck_assert_uint_eq(g.ord[2], 150);
	ck_assert_str_eq(g.text[2], "");
	/* The adopted file is gone; b's own stays while b lives. */
	ck_assert_int_eq(files(), 1);
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 0);
	/* Closed with nothing waiting: removed. */
	spool_close(b, 0);
	ck_assert_int_eq(files(), 0);
}
END_TEST

START_TEST(test_live_and_other_key_left_alone)
{
	struct spool *live, *other, *me;
	struct got g;

	ck_assert_ptr_nonnull(live = spool_open(dir, "k1"));
	put(live, 1, 1, 1, "live");
	ck_assert_ptr_nonnull(other = spool_open(dir, "k2"));
	put(other, 2, 2, 1, "other database");
	spool_close(other, 1);

	ck_assert_ptr_nonnull(me = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(me, collect, &g), 0);
	ck_assert_int_eq(files(), 3);

	/* Once its worker is gone, the file of the same key is taken. */
	spool_close(live, 1);
	ck_assert_uint_eq(spool_adopt(me, collect, &g), 1);
	ck_assert_str_eq(g.text[0], "live");
	ck_assert_int_eq(files(), 2);
	spool_close(me, 0);
	ck_assert_int_eq(files(), 1);
}
END_TEST

START_TEST(test_cleared_file_adopts_nothing)
{
	struct spool *a, *b;
	struct got g;

	ck_assert_ptr_nonnull(a = spool_open(dir, "k1"));
	put(a, 1, 1, 1, "stored already");
	spool_clear(a);
	put(a, 2, 2, 1, "after the clear");
	spool_clear(a);
	spool_close(a, 1);
	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 0);
	ck_assert_int_eq(g.n, 0);
	/* The empty file is removed all the same. */
	ck_assert_int_eq(files(), 1);
	spool_close(b, 0);
}
END_TEST

START_TEST(test_record_cut_short)
{
	char path[PATH_MAX];
	struct spool *a, *b;
	struct stat st;
	struct got g;

	ck_assert_ptr_nonnull(a = spool_open(dir, "k1"));
	put(a, 1, 1, 1, "whole");
	put(a, 2, 2, 2, "cut short by a crash");
	(void)snprintf(path, sizeof(path), "%s", spool_path(a));
	spool_close(a, 1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(truncate(path, st.st_size - 3), 0);

	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 1);
	ck_assert_str_eq(g.text[0], "whole");
	ck_assert_int_eq(stat(path, &st), -1);
	spool_close(b, 0);
}
END_TEST

START_TEST(test_not_a_spool)
{
	char path[PATH_MAX];
	struct spool *b;
	struct got g;
	FILE *fp;

	/* Garbage under a spool name: nothing read, the file removed. */
	(void)snprintf(path, sizeof(path), "%s/spool.k1.garbage", dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	(void)fputs("not a spool file, but long enough for a header\n", fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	spool_close(b, 0);
	/* A directory that cannot be written: NULL, not a crash. */
	ck_assert_ptr_null(spool_open("/nonexistent-chatd-spool", "k1"));
}
END_TEST

/*
 * The append of a record of one recipient, its result; with a file size
 * limit of lim bytes (RLIMIT_FSIZE) when lim > 0, set around the append
 * alone: Check's own messages go through a file too.
 */
static int
try_put(struct spool *sp, uint64_t ord, const char *text, rlim_t lim)
{
	uint32_t uid = 1;
	struct spool_rec r = { ord, 1, &uid, strlen(text), text };
	struct rlimit old, l;
	int rc;

	if (lim == 0)
		return spool_append(sp, &r);
	if (getrlimit(RLIMIT_FSIZE, &old) == -1)
		return -2;
	l = old;
	l.rlim_cur = lim;
	if (setrlimit(RLIMIT_FSIZE, &l) == -1)
		return -2;
	rc = spool_append(sp, &r);
	if (setrlimit(RLIMIT_FSIZE, &old) == -1)
		return -2;
	return rc;
}

/*
 * A full disk, made with RLIMIT_FSIZE (writes past it fail with EFBIG,
 * SIGXFSZ ignored): the record that does not fit is cut short at the
 * limit and refused; every append after it is refused too, even with
 * room again, so that no whole record follows the cut one (which would
 * end the file for the reader, and hide it); the whole ones before it are
 * read back.  Once emptied (its messages stored) the file takes records
 * again.
 */
#define FULL_TEXT	"forty bytes of text, a record of 68 b..."
#define FULL_LIMIT	200	/* two records and 64 bytes of a third */

/* spool_sync writes to disk only what was appended since its last call:
 * a worker calls it every second, and an idle spool costs nothing. */
START_TEST(test_sync_only_when_grown)
{
	struct spool *sp;
	struct got g;

	ck_assert_ptr_nonnull(sp = spool_open(dir, "k"));
	ck_assert_int_eq(spool_sync(sp), 0);
	put(sp, 1, 10, 1, "one");
	ck_assert_int_eq(spool_sync(sp), 1);
	ck_assert_int_eq(spool_sync(sp), 0);
	put(sp, 2, 20, 2, "two");
	put(sp, 3, 30, 1, "three");
	ck_assert_int_eq(spool_sync(sp), 1);
	ck_assert_int_eq(spool_sync(sp), 0);
	spool_clear(sp);
	ck_assert_int_eq(spool_sync(sp), 0);
	put(sp, 4, 40, 1, "four");
	spool_close(sp, 1);
	/* The next worker takes the file (and syncs its own). */
	memset(&g, 0, sizeof(g));
	ck_assert_ptr_nonnull(sp = spool_open(dir, "k"));
	ck_assert_uint_eq(spool_adopt(sp, collect, &g), 1);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(g.text[0], "four");
	ck_assert_int_eq(files(), 1);
	spool_close(sp, 0);
	ck_assert_int_eq(files(), 0);
}
END_TEST

START_TEST(test_full_disk)
{
	struct spool *a, *b;
	struct stat st;
	struct got g;
	char path[PATH_MAX];

	ck_assert_uint_eq(strlen(FULL_TEXT), 40);
	ck_assert_ptr_ne(signal(SIGXFSZ, SIG_IGN), SIG_ERR);

	ck_assert_ptr_nonnull(a = spool_open(dir, "k1"));
	(void)snprintf(path, sizeof(path), "%s", spool_path(a));
	ck_assert_int_eq(try_put(a, 1, FULL_TEXT, FULL_LIMIT), 0);
	ck_assert_int_eq(try_put(a, 2, FULL_TEXT, FULL_LIMIT), 0);
	ck_assert_int_eq(try_put(a, 3, FULL_TEXT, FULL_LIMIT), -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, FULL_LIMIT);
	/* Room again: still refused until the file is emptied. */
	ck_assert_int_eq(try_put(a, 4, "x", 0), -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, FULL_LIMIT);
	spool_close(a, 1);

	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 2);
	ck_assert_uint_eq(g.ord[0], 1);
	ck_assert_uint_eq(g.ord[1], 2);
	ck_assert_str_eq(g.text[1], FULL_TEXT);
	spool_close(b, 0);

	/* Emptied: appends work again, and only the new record is read. */
	ck_assert_ptr_nonnull(a = spool_open(dir, "k1"));
	ck_assert_int_eq(try_put(a, 1, FULL_TEXT, FULL_LIMIT), 0);
	ck_assert_int_eq(try_put(a, 2, FULL_TEXT, FULL_LIMIT), 0);
	ck_assert_int_eq(try_put(a, 3, FULL_TEXT, FULL_LIMIT), -1);
	spool_clear(a);
	ck_assert_int_eq(try_put(a, 5, "after the clear", 0), 0);
	spool_close(a, 1);
	ck_assert_ptr_nonnull(b = spool_open(dir, "k1"));
	memset(&g, 0, sizeof(g));
	ck_assert_uint_eq(spool_adopt(b, collect, &g), 1);
	ck_assert_uint_eq(g.ord[0], 5);
	ck_assert_str_eq(g.text[0], "after the clear");
	spool_close(b, 0);
	ck_assert_int_eq(files(), 0);
	(void)signal(SIGXFSZ, SIG_DFL);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_adopt_in_order);
	tcase_add_test(tc, test_live_and_other_key_left_alone);
	tcase_add_test(tc, test_cleared_file_adopts_nothing);
	tcase_add_test(tc, test_record_cut_short);
	tcase_add_test(tc, test_not_a_spool);
	tcase_add_test(tc, test_full_disk);
	tcase_add_test(tc, test_sync_only_when_grown);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int nfailed;

	log_init("check_spool", LOG_LEVEL_ERR);
	sr = srunner_create(spool_suite());
	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
