/*
 * check_inbox.c - unit tests for the batches between workers (inbox.c):
 * every record arrives with its own uid, token and frame, in order, and a
 * frame repeated for many recipients of one worker travels once.
 *
 * The inbox is a real one (socketpairs); the test sends to its own slot,
 * which reads like any other.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox.h"

#define MAX_PAYLOAD	(64 * 1024)

struct got {
	uint32_t id;
	uint64_t token;
	char frame[256];
};

static struct inbox *
inbox_open(void)
{
	char err[128];
	struct inbox *ib = inbox_create(2, MAX_PAYLOAD, err, sizeof(err));

	ck_assert_msg(ib != NULL, "%s", err);
	inbox_worker_init(ib, 0, 16 * 1024 * 1024, 1024 * 1024);
	return ib;
}

static void
send_deliver(struct inbox *ib, uint32_t uid, const char *frame)
{
	struct inbox_msg m;
	int want_out;

	memset(&m, 0, sizeof(m));
	m.type = INBOX_DELIVER;
	m.id = uid;
	m.token = 1000 + uid;
	m.data = frame;
	m.len = strlen(frame);
	ck_assert_int_eq(inbox_send(ib, 0, &m, &want_out), 0);
	ck_assert_int_eq(want_out, 0);
}

/* Receive every datagram waiting; the records into got[], the total
 * datagram bytes into *bytes.  Returns the number of records. */
static size_t
recv_all(struct inbox *ib, struct got *got, size_t max, size_t *bytes)
{
	static char buf[MAX_PAYLOAD + 4096];
	struct inbox_msg m, one;
	size_t n = 0, off;

	*bytes = 0;
	while (inbox_recv(ib, &m, buf, sizeof(buf)) == 1) {
		ck_assert_int_eq(m.type, INBOX_BATCH);
		*bytes += m.len;
		off = 0;
		memset(&one, 0, sizeof(one));
		while (inbox_batch_next(&m, &off, &one)) {
			ck_assert_uint_lt(n, max);
			ck_assert_int_eq(one.type, INBOX_DELIVER);
			ck_assert_uint_lt(one.len, sizeof(got[n].frame));
			got[n].id = one.id;
			got[n].token = one.token;
			memcpy(got[n].frame, one.data, one.len);
			got[n].frame[one.len] = '\0';
			n++;
		}
	}
	return n;
}

/* 300 members of one group on this worker: one frame, 300 records. */
START_TEST(test_repeated_frame_travels_once)
{
	static const char frame[] = "{\"msgid\":7,\"id\":1,\"name\":\"a\","
	    "\"groupid\":9,\"msg\":\"to the whole group, once\"}\n";
	struct inbox *ib = inbox_open();
	static struct got got[400];
	size_t n, bytes, i;
	int want_out;

	for (i = 0; i < 300; i++)
		send_deliver(ib, (uint32_t)(i + 1), frame);
	inbox_flush(ib, 0, &want_out);
	n = recv_all(ib, got, 400, &bytes);
	ck_assert_uint_eq(n, 300);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(got[i].id, i + 1);
		ck_assert_uint_eq(got[i].token, 1000 + i + 1);
		ck_assert_str_eq(got[i].frame, frame);
	}
	/* 300 record headers and the frame once. */
	ck_assert_uint_lt(bytes, 300 * 16 + 2 * sizeof(frame));
	inbox_destroy(ib);
}
END_TEST

/*
 * The sender builds each message in one scratch buffer: the same address
 * and length with other bytes is another frame, and a frame repeated
 * after a different one is sent again.
 */
START_TEST(test_same_buffer_other_frame)
{
	struct inbox *ib = inbox_open();
	static struct got got[16];
	char scratch[64];
	size_t n, bytes;
	int want_out;

	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"first\"}\n");
	send_deliver(ib, 1, scratch);
	send_deliver(ib, 2, scratch);
	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"other\"}\n");
	send_deliver(ib, 3, scratch);		/* same length, same address */
	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"first\"}\n");
	send_deliver(ib, 4, scratch);
	send_deliver(ib, 5, "{}\n");
	inbox_flush(ib, 0, &want_out);
	n = recv_all(ib, got, 16, &bytes);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(got[0].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[1].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[2].frame, "{\"msg\":\"other\"}\n");
	ck_assert_str_eq(got[3].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[4].frame, "{}\n");
	ck_assert_uint_eq(got[2].id, 3);
	ck_assert_uint_eq(got[4].token, 1005);
	inbox_destroy(ib);
}
END_TEST

/* A repeat never starts a batch: after a flush, or when the batch
 * filled up, the frame is carried again. */
START_TEST(test_repeat_across_batches)
{
	struct inbox *ib = inbox_open();
	static struct got got[8000];
	char big[200];
	size_t n, bytes, i;
	int want_out;

	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	send_deliver(ib, 1, big);
	inbox_flush(ib, 0, &want_out);
	send_deliver(ib, 2, big);		/* a new batch */
	/* Enough records to fill a batch (60 KiB) several times. */
	for (i = 3; i < 7000; i++)
		send_deliver(ib, (uint32_t)i, big);
	inbox_flush(ib, 0, &want_out);
	n = recv_all(ib, got, 8000, &bytes);
	ck_assert_uint_eq(n, 6999);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(got[i].id, i + 1);
		ck_assert_str_eq(got[i].frame, big);
	}
	inbox_destroy(ib);
}
END_TEST

static Suite *
inbox_suite(void)
{
	Suite *s = suite_create("inbox");
	TCase *tc = tcase_create("batch");

	tcase_add_test(tc, test_repeated_frame_travels_once);
	tcase_add_test(tc, test_same_buffer_other_frame);
	tcase_add_test(tc, test_repeat_across_batches);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(inbox_suite());
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
