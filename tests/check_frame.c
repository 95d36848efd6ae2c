/*
 * check_frame.c - unit tests of the client stream splitter (src/frame.c).
 *
 * A small feeder plays the connection layer (conn.c): it appends each
 * chunk to a growing buffer, calls frame_next() until FRAME_NONE or an
 * error, collects the frames, then discards frame_consumable() bytes from
 * the front with memmove + frame_shift().  Every input is fed whole, byte
 * by byte and in pseudo-random chunk sizes (fixed seeds), and must give
 * the same frames and the same final status each way.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define MAXFRAMES	64

struct feeder {
	struct frame f;
	size_t max;
	char *buf;
	size_t len, cap;
	char *frames[MAXFRAMES];
	size_t flen[MAXFRAMES];
	int nframes;
	int err;		/* 0, FRAME_TOO_LARGE or FRAME_BAD */
	size_t maxbuf;		/* the most bytes the buffer ever held */
};

static void
feeder_init(struct feeder *fd, size_t max)
{
	memset(fd, 0, sizeof(*fd));
	frame_init(&fd->f);
	fd->max = max;
}

static void
feeder_free(struct feeder *fd)
{
	int i;

	for (i = 0; i < fd->nframes; i++)
		free(fd->frames[i]);
	free(fd->buf);
	memset(fd, 0, sizeof(*fd));
}

/*
 * ck_assert() records a checkpoint on every call (a write to Check's
 * message pipe), which makes the byte-by-byte loops slow; the feeder
 * checks its invariants with a plain test instead.
 */
#define REQUIRE(e) do { \
	if (!(e)) \
		ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #e); \
} while (0)

/* Feed one chunk; returns the status of the last frame_next() call. */
static int
feeder_feed(struct feeder *fd, const char *chunk, size_t n)
{
	size_t start, olen, used;
	int rc;

	REQUIRE(fd->err == 0);	/* no feeding after an error */
	if (fd->len + n > fd->cap) {
		fd->cap = (fd->len + n) * 2 + 16;
		fd->buf = realloc(fd->buf, fd->cap);
		REQUIRE(fd->buf != NULL);
	}
	if (n > 0)
		memcpy(fd->buf + fd->len, chunk, n);
	fd->len += n;
	if (fd->len > fd->maxbuf)
		fd->maxbuf = fd->len;
	for (;;) {
		rc = frame_next(&fd->f, fd->buf, fd->len, fd->max, &start,
		    &olen);
		if (rc == FRAME_NONE)
			break;
		if (rc != FRAME_OK) {
			REQUIRE(rc == FRAME_TOO_LARGE || rc == FRAME_BAD);
			fd->err = rc;
			return rc;
		}
		REQUIRE(start + olen <= fd->len);
		REQUIRE(olen >= 2);
		REQUIRE(olen <= fd->max);
		REQUIRE(fd->buf[start] == '{');
		REQUIRE(fd->nframes < MAXFRAMES);
		fd->frames[fd->nframes] = malloc(olen + 1);
		REQUIRE(fd->frames[fd->nframes] != NULL);
		memcpy(fd->frames[fd->nframes], fd->buf + start, olen);
		fd->frames[fd->nframes][olen] = '\0';
		fd->flen[fd->nframes] = olen;
		fd->nframes++;
	}
	used = frame_consumable(&fd->f);
	REQUIRE(used <= fd->len);
	if (used > 0) {
		memmove(fd->buf, fd->buf + used, fd->len - used);
		fd->len -= used;
		frame_shift(&fd->f, used);
	}
	return rc;
}

/* A tiny deterministic PRNG (xorshift32) so runs are reproducible. */
static uint32_t
rnd(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Feed in[0..n) according to mode; stops at the first error. */
static void
feed_all(struct feeder *fd, const char *in, size_t n, int mode,
    uint32_t seed, size_t maxchunk)
{
	size_t off = 0, k;
	uint32_t s = seed != 0 ? seed : 1;

	while (off < n && fd->err == 0) {
		if (mode == FEED_WHOLE)
			k = n;
		else if (mode == FEED_BYTES)
			k = 1;
		else
			k = 1 + rnd(&s) % maxchunk;
		if (k > n - off)
			k = n - off;
		(void)feeder_feed(fd, in + off, k);
		off += k;
	}
}

/*
 * Feed in[0..n) whole, byte by byte and in 200 random chunkings; each
 * must give exactly the frames want[0..nwant) and end with status err.
 */
static void
check_stream_n(const char *in, size_t n, size_t max, const char *const *want,
    int nwant, int err, int niter)
{
	struct feeder fd;
	int mode, it, i;

	for (mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
		int iters = mode == FEED_RANDOM ? niter : 1;

		for (it = 0; it < iters; it++) {
			feeder_init(&fd, max);
			feed_all(&fd, in, n, mode, 0x9e3779b9u + (uint32_t)it,
			    it % 2 == 0 ? 7 : 64);
			if (fd.nframes != nwant || fd.err != err)
				ck_abort_msg("mode %d iteration %d: %d frames "
				    "status %d, want %d frames status %d",
				    mode, it, fd.nframes, fd.err, nwant, err);
			for (i = 0; i < nwant; i++) {
				if (fd.flen[i] != strlen(want[i]) ||
				    strcmp(fd.frames[i], want[i]) != 0)
					ck_abort_msg("mode %d iteration %d: "
					    "frame %d is \"%s\", want \"%s\"",
					    mode, it, i, fd.frames[i], want[i]);
			}
			/* Between objects everything is consumed. */
			if (err == 0 && fd.len != 0)
				ck_abort_msg("mode %d iteration %d: %zu bytes "
				    "left", mode, it, fd.len);
			feeder_free(&fd);
		}
	}
}

static void
check_stream(const char *in, size_t n, size_t max, const char *const *want,
    int nwant, int err)
{
	check_stream_n(in, n, max, want, nwant, err, 200);
}

#define NELEM(a)	((int)(sizeof(a) / sizeof((a)[0])))
#define CHECK_STR(in, max, want, err) \
	check_stream((in), strlen(in), (max), (want), NELEM(want), (err))
/* A stream that fails before any frame. */
#define CHECK_NONE(in, max, err) \
	check_stream((in), strlen(in), (max), NULL, 0, (err))

/* --- plain framing --------------------------------------------------- */

START_TEST(test_one_object)
{
	static const char *const want[] = { "{\"msgid\":18}" };

	CHECK_STR("{\"msgid\":18}", 65536, want, 0);
}
END_TEST

START_TEST(test_one_object_bounds)
{
	struct frame f;
	const char *s = " \n\0{\"a\":1}  ";
	size_t len = 12, start = 99, olen = 99;

	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, len, 100, &start, &olen), FRAME_OK);
	ck_assert_uint_eq(start, 3);
	ck_assert_uint_eq(olen, 7);
	ck_assert_int_eq(frame_next(&f, s, len, 100, &start, &olen),
	    FRAME_NONE);
	ck_assert_uint_eq(frame_consumable(&f), len);
}
END_TEST

START_TEST(test_incomplete_then_complete)
{
	struct frame f;
	const char *s = "  {\"a\":[1,2";
	const char *t = "  {\"a\":[1,2]}";
	size_t start, olen;

	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, strlen(s), 100, &start, &olen),
	    FRAME_NONE);
	/* The open object stays; the whitespace before it may go. */
	ck_assert_uint_eq(frame_consumable(&f), 2);
	frame_shift(&f, 2);
	ck_assert_int_eq(frame_next(&f, t + 2, strlen(t) - 2, 100, &start,
	    &olen), FRAME_OK);
	ck_assert_uint_eq(start, 0);
	ck_assert_uint_eq(olen, strlen(t) - 2);
	ck_assert_uint_eq(frame_consumable(&f), strlen(t) - 2);
}
END_TEST

START_TEST(test_back_to_back)
{
	static const char *const want[] = {
		"{\"msgid\":1,\"id\":1,\"password\":\"x\"}",
		"{\"msgid\":18}",
		"{}",
		"{\"msgid\":6,\"toid\":2,\"msg\":\"hi\"}",
	};

	CHECK_STR("{\"msgid\":1,\"id\":1,\"password\":\"x\"}{\"msgid\":18}{}"
	    "{\"msgid\":6,\"toid\":2,\"msg\":\"hi\"}", 65536, want, 0);
}
END_TEST

START_TEST(test_nul_separated)
{
	static const char *const want[] = {
		"{\"msgid\":4,\"name\":\"a\",\"password\":\"p\"}",
		"{\"msgid\":18}",
		"{\"msgid\":3}",
	};
	/* The classic client: each object followed by one NUL. */
	const char in[] = "{\"msgid\":4,\"name\":\"a\",\"password\":\"p\"}\0"
	    "{\"msgid\":18}\0{\"msgid\":3}\0";

	check_stream(in, sizeof(in) - 1, 65536, want, NELEM(want), 0);
}
END_TEST

START_TEST(test_newline_separated)
{
	static const char *const want[] = { "{\"a\":1}", "{\"b\":2}",
	    "{\"c\":3}" };

	CHECK_STR("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", 65536, want, 0);
}
END_TEST

START_TEST(test_crlf_separated)
{
	static const char *const want[] = { "{\"a\":1}", "{\"b\":2}",
	    "{\"c\":3}" };

	CHECK_STR("{\"a\":1}\r\n{\"b\":2}\r\n{\"c\":3}\r\n", 65536, want, 0);
}
END_TEST

START_TEST(test_space_tab_separated)
{
	static const char *const want[] = { "{\"a\":1}", "{ \"b\" :\t2 }",
	    "{\"c\":3}" };

	CHECK_STR("  \t{\"a\":1} \t \t{ \"b\" :\t2 }\t\t  {\"c\":3}  \t",
	    65536, want, 0);
}
END_TEST

START_TEST(test_mixed_separators)
{
	static const char *const want[] = { "{\"a\":1}", "{\"b\":2}",
	    "{\"c\":3}", "{\"d\":4}" };
	const char in[] = "\r\n{\"a\":1}\0\0\n{\"b\":2}\r\n\t \0{\"c\":3}"
	    "{\"d\":4}\0\n";

	check_stream(in, sizeof(in) - 1, 65536, want, NELEM(want), 0);
}
END_TEST

START_TEST(test_empty_and_whitespace_only)
{
	static const char *const want[1] = { NULL };
	const char in[] = " \t\r\n\0\0\n";

	check_stream(in, sizeof(in) - 1, 65536, want, 0, 0);
	check_stream("", 0, 65536, want, 0, 0);
}
END_TEST

/* --- strings, escapes, nesting --------------------------------------- */

START_TEST(test_strings_with_braces)
{
	static const char *const want[] = {
		"{\"msg\":\"}}}]]]{{{[[[\"}",
		"{\"msg\":\"a } b\",\"x\":\"{\"}",
		"{\"msg\":\"[\"}",
	};

	CHECK_STR("{\"msg\":\"}}}]]]{{{[[[\"}\n{\"msg\":\"a } b\",\"x\":\"{\"}"
	    "{\"msg\":\"[\"}", 65536, want, 0);
}
END_TEST

START_TEST(test_escaped_quotes)
{
	static const char *const want[] = {
		/* {"msg":"say \"}\" now"} */
		"{\"msg\":\"say \\\"}\\\" now\"}",
		/* {"msg":"\"{"} */
		"{\"msg\":\"\\\"{\"}",
	};

	CHECK_STR("{\"msg\":\"say \\\"}\\\" now\"}{\"msg\":\"\\\"{\"}", 65536,
	    want, 0);
}
END_TEST

START_TEST(test_escaped_backslashes)
{
	static const char *const want[] = {
		/* {"p":"C:\\"} : the string ends after the escaped \ */
		"{\"p\":\"C:\\\\\"}",
		/* {"p":"\\\\","q":"\\\"}"} */
		"{\"p\":\"\\\\\\\\\",\"q\":\"\\\\\\\"}\"}",
		/* {"p":"\\"} then {"x":"}"} */
		"{\"p\":\"\\\\\"}",
		"{\"x\":\"}\"}",
	};

	CHECK_STR("{\"p\":\"C:\\\\\"}\n"
	    "{\"p\":\"\\\\\\\\\",\"q\":\"\\\\\\\"}\"}\t"
	    "{\"p\":\"\\\\\"}{\"x\":\"}\"}", 65536, want, 0);
}
END_TEST

START_TEST(test_escaped_backslashes_nul)
{
	static const char *const want[] = {
		"{\"p\":\"C:\\\\\"}",
		"{\"p\":\"\\\\\\\\\",\"q\":\"\\\\\\\"}\"}",
	};
	const char in[] = "{\"p\":\"C:\\\\\"}\0"
	    "{\"p\":\"\\\\\\\\\",\"q\":\"\\\\\\\"}\"}\0";

	check_stream(in, sizeof(in) - 1, 65536, want, NELEM(want), 0);
}
END_TEST

START_TEST(test_unicode_escape_and_utf8)
{
	static const char *const want[] = {
		"{\"msg\":\"\\u007d \\u005c \xe4\xbd\xa0\xe5\xa5\xbd\"}",
		"{\"msg\":\"\\/\\n\\t\"}",
	};

	CHECK_STR("{\"msg\":\"\\u007d \\u005c \xe4\xbd\xa0\xe5\xa5\xbd\"}"
	    "{\"msg\":\"\\/\\n\\t\"}", 65536, want, 0);
}
END_TEST

START_TEST(test_nested)
{
	static const char *const want[] = {
		"{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":[]}]]]}},\"e\":[{},{}]}",
		"{\"x\":[[[[[[]]]]]],\"y\":{\"z\":{}}}",
	};

	CHECK_STR("{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":[]}]]]}},\"e\":[{},{}]}"
	    "\n{\"x\":[[[[[[]]]]]],\"y\":{\"z\":{}}}\n", 65536, want, 0);
}
END_TEST

START_TEST(test_deep_nesting)
{
	/* 1000 levels: only depth counting, no recursion. */
	char in[4002];
	const char *want[1];
	int i;

	in[0] = '{';
	in[1] = '"';
	in[2] = 'a';
	in[3] = '"';
	in[4] = ':';
	for (i = 0; i < 998; i++)
		in[5 + i] = '[';
	for (i = 0; i < 998; i++)
		in[5 + 998 + i] = ']';
	in[5 + 2 * 998] = '}';
	in[6 + 2 * 998] = '\0';
	want[0] = in;
	check_stream(in, strlen(in), 65536, want, 1, 0);
}
END_TEST

START_TEST(test_unbalanced_is_returned)
{
	/* Balancing only: "{]" closes the object; JSON validity is the
	 * parser's job. */
	static const char *const want[] = { "{]", "{\"a\":[}]", "{}" };

	CHECK_STR("{]{\"a\":[}]{}", 65536, want, 0);
}
END_TEST

START_TEST(test_unbalanced_mismatch_then_more)
{
	/* "{[}" is depth 1 after '}', so "]" ends it. */
	static const char *const want[] = { "{[}]" };

	CHECK_STR("{[}]\n", 65536, want, 0);
}
END_TEST

/* --- framing errors -------------------------------------------------- */

START_TEST(test_leading_garbage)
{
	static const char *const want[1] = { NULL };

	check_stream("x{\"a\":1}", 8, 65536, want, 0, FRAME_BAD);
	check_stream("  \n\"a\"", 6, 65536, want, 0, FRAME_BAD);
	check_stream("}", 1, 65536, want, 0, FRAME_BAD);
	check_stream("\xef\xbb\xbf{}", 5, 65536, want, 0, FRAME_BAD);
	check_stream("\x01", 1, 65536, want, 0, FRAME_BAD);
	check_stream("\v{}", 3, 65536, want, 0, FRAME_BAD);
	check_stream("\f{}", 3, 65536, want, 0, FRAME_BAD);
}
END_TEST

START_TEST(test_leading_garbage_position)
{
	struct frame f;
	size_t start, olen;

	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, " \0 x", 4, 100, &start, &olen),
	    FRAME_BAD);
}
END_TEST

START_TEST(test_stray_byte_between)
{
	static const char *const want[] = { "{\"a\":1}" };

	CHECK_STR("{\"a\":1}x{\"b\":2}", 65536, want, FRAME_BAD);
	CHECK_STR("{\"a\":1}\n,{\"b\":2}", 65536, want, FRAME_BAD);
	CHECK_STR("{\"a\":1}}", 65536, want, FRAME_BAD);
	CHECK_STR("{\"a\":1}\"", 65536, want, FRAME_BAD);
}
END_TEST

START_TEST(test_stray_byte_order)
{
	/* The first frame is returned before the error is seen. */
	struct frame f;
	const char *s = "{\"a\":1}x{\"b\":2}";
	size_t start, olen;

	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, strlen(s), 100, &start, &olen),
	    FRAME_OK);
	ck_assert_uint_eq(start, 0);
	ck_assert_uint_eq(olen, 7);
	ck_assert_int_eq(frame_next(&f, s, strlen(s), 100, &start, &olen),
	    FRAME_BAD);
}
END_TEST

START_TEST(test_top_level_array)
{
	static const char *const want1[] = { "{}" };

	CHECK_NONE("[1,2,3]", 65536, FRAME_BAD);
	CHECK_NONE("[{\"msgid\":18}]", 65536, FRAME_BAD);
	CHECK_STR("{}[]", 65536, want1, FRAME_BAD);
	CHECK_NONE("18", 65536, FRAME_BAD);
	CHECK_NONE("null", 65536, FRAME_BAD);
}
END_TEST

/* --- size limit ------------------------------------------------------ */

/* An object of exactly n bytes: {"a":"xxx...x"} */
static char *
object_of(size_t n)
{
	char *s;

	ck_assert_uint_ge(n, 8);
	s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, 'x', n - 8);
	s[n - 2] = '"';
	s[n - 1] = '}';
	s[n] = '\0';
	return s;
}

START_TEST(test_exactly_max_ok)
{
	size_t max;

	for (max = 8; max <= 300; max += 13) {
		char *s = object_of(max);
		const char *want[1];

		want[0] = s;
		check_stream(s, max, max, want, 1, 0);
		free(s);
	}
}
END_TEST

START_TEST(test_max_plus_one_too_large)
{
	static const char *const want[1] = { NULL };
	size_t max;

	for (max = 8; max <= 300; max += 13) {
		char *s = object_of(max + 1);

		check_stream(s, max + 1, max, want, 0, FRAME_TOO_LARGE);
		free(s);
	}
}
END_TEST

START_TEST(test_max_boundary_nested_last_byte)
{
	/* The size counts the whole object, closing brace included,
	 * whatever the last byte is. */
	static const char *const want[] = { "{\"a\":[1]}" };	/* 9 bytes */

	CHECK_STR("{\"a\":[1]}", 9, want, 0);
	CHECK_NONE("{\"a\":[1]}", 8, FRAME_TOO_LARGE);
}
END_TEST

START_TEST(test_too_large_one_chunk)
{
	struct frame f;
	char *s = object_of(5000);
	size_t start, olen;

	/* Complete but too long: the error comes when the scan reaches
	 * byte max of the object, before the closing brace. */
	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, 5000, 1024, &start, &olen),
	    FRAME_TOO_LARGE);
	/* Incomplete and already too long in one chunk. */
	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, 4000, 1024, &start, &olen),
	    FRAME_TOO_LARGE);
	free(s);
}
END_TEST

START_TEST(test_too_large_growing)
{
	struct feeder fd;
	char *s = object_of(5000);
	size_t off;

	/* An object that never closes, fed 100 bytes at a time: NONE
	 * until it passes max, then TOO_LARGE; the buffer never holds
	 * much more than max. */
	feeder_init(&fd, 1024);
	for (off = 0; off < 4900 && fd.err == 0; off += 100)
		(void)feeder_feed(&fd, s + off, 100);
	ck_assert_int_eq(fd.err, FRAME_TOO_LARGE);
	ck_assert_int_eq(fd.nframes, 0);
	ck_assert_uint_le(fd.maxbuf, 1024 + 100);
	ck_assert_uint_eq(off, 1100);
	feeder_free(&fd);
	free(s);
}
END_TEST

START_TEST(test_partial_max_waits)
{
	struct frame f;
	char *s = object_of(200);	/* the closing brace is byte 199 */
	size_t start, olen;

	/* An open object of exactly max bytes (no close yet) is not an
	 * error: it may still close within max... */
	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, 100, 100, &start, &olen),
	    FRAME_NONE);
	/* ...but one more byte that does not close it is too many. */
	ck_assert_int_eq(frame_next(&f, s, 101, 100, &start, &olen),
	    FRAME_TOO_LARGE);
	free(s);
}
END_TEST

START_TEST(test_partial_max_then_close_too_large)
{
	struct frame f;
	char *s = object_of(101);
	size_t start, olen;

	frame_init(&f);
	ck_assert_int_eq(frame_next(&f, s, 100, 100, &start, &olen),
	    FRAME_NONE);
	/* The closing brace would make it max + 1 bytes. */
	ck_assert_int_eq(frame_next(&f, s, 101, 100, &start, &olen),
	    FRAME_TOO_LARGE);
	free(s);
}
END_TEST

START_TEST(test_second_object_too_large)
{
	const char *want[1];
	char *big = object_of(500);
	char *in = malloc(600);

	ck_assert_ptr_nonnull(in);
	(void)snprintf(in, 600, "{\"a\":1}\n%s", big);
	want[0] = "{\"a\":1}";
	check_stream(in, strlen(in), 499, want, 1, FRAME_TOO_LARGE);
	want[0] = "{\"a\":1}";
	{
		const char *want2[2] = { "{\"a\":1}", big };

		check_stream(in, strlen(in), 500, want2, 2, 0);
	}
	free(big);
	free(in);
}
END_TEST

START_TEST(test_flood_between_frames)
{
	/* 100000 bytes of NUL and whitespace between small frames with a
	 * max of 64: separators never count against max and are all
	 * consumable, so the buffer stays small. */
	static const char sep[] = { '\0', ' ', '\t', '\r', '\n' };
	const size_t flood = 100000;
	size_t n = 0, i;
	char *in = malloc(2 * flood + 200);
	char *a = object_of(64);
	const char *want[3];
	struct feeder fd;
	uint32_t s = 12345;

	ck_assert_ptr_nonnull(in);
	memcpy(in + n, a, 64);
	n += 64;
	for (i = 0; i < flood; i++)
		in[n++] = sep[i % sizeof(sep)];
	memcpy(in + n, "{\"b\":2}", 7);
	n += 7;
	for (i = 0; i < flood; i++)
		in[n++] = sep[(i * 7) % sizeof(sep)];
	memcpy(in + n, a, 64);
	n += 64;
	want[0] = a;
	want[1] = "{\"b\":2}";
	want[2] = a;
	/* Byte by byte is 200000 calls; a few random chunkings suffice. */
	check_stream_n(in, n, 64, want, 3, 0, 20);

	/* In chunks of up to 64 bytes the buffer never holds more than a
	 * frame and a chunk. */
	feeder_init(&fd, 64);
	for (i = 0; i < n && fd.err == 0; ) {
		size_t k = 1 + rnd(&s) % 64;

		if (k > n - i)
			k = n - i;
		(void)feeder_feed(&fd, in + i, k);
		i += k;
	}
	ck_assert_int_eq(fd.err, 0);
	ck_assert_int_eq(fd.nframes, 3);
	ck_assert_uint_eq(fd.len, 0);
	ck_assert_uint_le(fd.maxbuf, 64 + 64);
	feeder_free(&fd);

	/* Only separators: consumable at once, nothing kept. */
	feeder_init(&fd, 64);
	(void)feeder_feed(&fd, in + 64, flood);
	ck_assert_int_eq(fd.err, 0);
	ck_assert_int_eq(fd.nframes, 0);
	ck_assert_uint_eq(fd.len, 0);
	feeder_free(&fd);

	free(a);
	free(in);
}
END_TEST

START_TEST(test_max_counts_from_object_start)
{
	/* Leading separators before an object of exactly max bytes. */
	char in[300];
	char *a = object_of(100);
	const char *want[1];

	memset(in, '\n', 150);
	memcpy(in + 150, a, 100);
	want[0] = a;
	check_stream(in, 250, 100, want, 1, 0);
	free(a);
}
END_TEST

/* --- chunking equivalence ------------------------------------------- */

START_TEST(test_random_chunks_equivalent)
{
	/* A mixed stream fed in many random chunkings gives the same
	 * frames as feeding it whole. */
	const char in[] = "{\"msgid\":1,\"id\":7,\"password\":\"p\\\"}\"}\0"
	    "\r\n{\"msgid\":6,\"toid\":2,\"msg\":\"{[\\\\\"}"
	    "{\"x\":[{\"y\":\"]}\"},[]]}\t\t"
	    "{\"z\":\"\\\\\\\\\"}\n\0\0 ";
	struct feeder whole, fd;
	uint32_t seed;
	int i;

	feeder_init(&whole, 65536);
	feed_all(&whole, in, sizeof(in) - 1, FEED_WHOLE, 0, 0);
	ck_assert_int_eq(whole.err, 0);
	ck_assert_int_eq(whole.nframes, 4);
	ck_assert_str_eq(whole.frames[0],
	    "{\"msgid\":1,\"id\":7,\"password\":\"p\\\"}\"}");
	ck_assert_str_eq(whole.frames[1],
	    "{\"msgid\":6,\"toid\":2,\"msg\":\"{[\\\\\"}");
	ck_assert_str_eq(whole.frames[2], "{\"x\":[{\"y\":\"]}\"},[]]}");
	ck_assert_str_eq(whole.frames[3], "{\"z\":\"\\\\\\\\\"}");
	for (seed = 1; seed <= 2000; seed++) {
		feeder_init(&fd, 65536);
		feed_all(&fd, in, sizeof(in) - 1, FEED_RANDOM, seed * 2654435761u,
		    1 + seed % 17);
		REQUIRE(fd.err == 0);
		REQUIRE(fd.nframes == whole.nframes);
		for (i = 0; i < fd.nframes; i++)
			REQUIRE(strcmp(fd.frames[i], whole.frames[i]) == 0);
		REQUIRE(fd.len == 0);
		feeder_free(&fd);
	}
	feeder_free(&whole);
}
END_TEST

START_TEST(test_shift_keeps_state)
{
	/* A string and an escape open across a shift. */
	struct frame f;
	char buf[64];
	size_t start, olen, len;

	frame_init(&f);
	memcpy(buf, "\n\n{\"a\":\"x\\", 10);
	len = 10;
	ck_assert_int_eq(frame_next(&f, buf, len, 100, &start, &olen),
	    FRAME_NONE);
	ck_assert_uint_eq(frame_consumable(&f), 2);
	memmove(buf, buf + 2, len - 2);
	len -= 2;
	frame_shift(&f, 2);
	/* The escaped quote and a brace inside the string. */
	memcpy(buf + len, "\"}\"}", 4);
	len += 4;
	ck_assert_int_eq(frame_next(&f, buf, len, 100, &start, &olen),
	    FRAME_OK);
	ck_assert_uint_eq(start, 0);
	ck_assert_uint_eq(olen, len);
	ck_assert_mem_eq(buf, "{\"a\":\"x\\\"}\"}", len);
	ck_assert_uint_eq(frame_consumable(&f), len);
}
END_TEST

static Suite *
frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc;

	tc = tcase_create("framing");
	tcase_add_test(tc, test_one_object);
	tcase_add_test(tc, test_one_object_bounds);
	tcase_add_test(tc, test_incomplete_then_complete);
	tcase_add_test(tc, test_back_to_back);
	tcase_add_test(tc, test_nul_separated);
	tcase_add_test(tc, test_newline_separated);
	tcase_add_test(tc, test_crlf_separated);
	tcase_add_test(tc, test_space_tab_separated);
	tcase_add_test(tc, test_mixed_separators);
	tcase_add_test(tc, test_empty_and_whitespace_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("strings");
	tcase_add_test(tc, test_strings_with_braces);
	tcase_add_test(tc, test_escaped_quotes);
	tcase_add_test(tc, test_escaped_backslashes);
	tcase_add_test(tc, test_escaped_backslashes_nul);
	tcase_add_test(tc, test_unicode_escape_and_utf8);
	tcase_add_test(tc, test_nested);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_unbalanced_is_returned);
	tcase_add_test(tc, test_unbalanced_mismatch_then_more);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_leading_garbage);
	tcase_add_test(tc, test_leading_garbage_position);
	tcase_add_test(tc, test_stray_byte_between);
	tcase_add_test(tc, test_stray_byte_order);
	tcase_add_test(tc, test_top_level_array);
	suite_add_tcase(s, tc);

	tc = tcase_create("limit");
	tcase_add_test(tc, test_exactly_max_ok);
	tcase_add_test(tc, test_max_plus_one_too_large);
	tcase_add_test(tc, test_max_boundary_nested_last_byte);
	tcase_add_test(tc, test_too_large_one_chunk);
	tcase_add_test(tc, test_too_large_growing);
	tcase_add_test(tc, test_partial_max_waits);
	tcase_add_test(tc, test_partial_max_then_close_too_large);
	tcase_add_test(tc, test_second_object_too_large);
	tcase_add_test(tc, test_flood_between_frames);
	tcase_add_test(tc, test_max_counts_from_object_start);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunking");
	tcase_add_test(tc, test_random_chunks_equivalent);
	tcase_add_test(tc, test_shift_keeps_state);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
