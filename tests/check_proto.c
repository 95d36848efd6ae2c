/*
 * check_proto.c - unit tests of request validation (src/request.c), the
 * UTF-8 checks (src/utf8.c), proto_strerror() (src/proto.c) and the
 * direct JSON writer (src/jsonw.c), which must print what cJSON prints.
 *
 * Every frame is parsed from an exact-size heap copy with no terminating
 * NUL, as the connection layer hands frames over, so an over-read shows
 * up under AddressSanitizer.
 */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster.h"
#include "conf.h"
#include "deliver.h"
#include "handler.h"
#include "jarena.h"
#include "jsonw.h"
#include "loginack.h"
#include "protocol.h"
#include "request.h"
#include "utf8.h"

#define MAX_MESSAGE	100

static struct request r;
static char errmsg[256];
static const struct request_limits lim = { MAX_MESSAGE };

static void
setup(void)
{
	memset(&r, 0, sizeof(r));
}

static void
teardown(void)
{
	request_free(&r);
}

/* Parse json[0..len) from an unterminated heap copy. */
static int
parse_len(const char *json, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, json, len);
	request_free(&r);
	errmsg[0] = '\0';
	rc = request_parse(&r, copy, len, &lim, errmsg, sizeof(errmsg));
	free(copy);	/* r keeps no pointer into the frame */
	if (rc != 0)
		ck_assert_msg(errmsg[0] != '\0', "error %d without errmsg", rc);
	return rc;
}

static int
parse(const char *json)
{
	return parse_len(json, strlen(json));
}

static void
parse_ok(const char *json)
{
	int rc = parse(json);

	if (rc != 0)
		ck_abort_msg("%s: error %d: %s", json, rc, errmsg);
}

/* Expect error rc; when field is not NULL the errmsg must name it. */
static void
parse_fails(const char *json, int want, const char *field)
{
	char quoted[80];
	int rc = parse(json);

	if (rc != want)
		ck_abort_msg("%s: got %d (%s), want %d", json, rc, errmsg, want);
	if (field != NULL) {
		(void)snprintf(quoted, sizeof(quoted), "\"%s\"", field);
		if (strstr(errmsg, quoted) == NULL)
			ck_abort_msg("%s: errmsg \"%s\" does not name %s", json,
			    errmsg, quoted);
	}
}

static char *
repeat(const char *unit, size_t n)
{
	size_t ul = strlen(unit), i;
	char *s = malloc(ul * n + 1);

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	s[ul * n] = '\0';
	return s;
}

/* --- valid requests of every msgid ------------------------------------ */

START_TEST(test_login)
{
	parse_ok("{\"msgid\":1,\"id\":42,\"password\":\"secret\"}");
	ck_assert_int_eq(r.msgid, MSG_LOGIN);
	ck_assert_ptr_null(r.seq);
	ck_assert_int_eq(request_int(&r, "id"), 42);
	ck_assert_str_eq(request_str(&r, "password"), "secret");
}
END_TEST

START_TEST(test_loginout)
{
	parse_ok("{\"msgid\":3}");
	ck_assert_int_eq(r.msgid, MSG_LOGINOUT);
	/* The classic client sends its id; it is ignored, not refused. */
	parse_ok("{\"msgid\":3,\"id\":7}");
	ck_assert_int_eq(r.msgid, MSG_LOGINOUT);
}
END_TEST

START_TEST(test_reg)
{
	parse_ok("{\"msgid\":4,\"name\":\"alice\",\"password\":\"pw\"}");
	ck_assert_int_eq(r.msgid, MSG_REG);
	ck_assert_str_eq(request_str(&r, "name"), "alice");
	ck_assert_str_eq(request_str(&r, "password"), "pw");
}
END_TEST

START_TEST(test_one_chat)
{
	parse_ok("{\"msgid\":6,\"id\":1,\"name\":\"a\",\"toid\":9,"
	    "\"msg\":\"hello\",\"time\":\"2024-01-01 10:00:00\"}");
	ck_assert_int_eq(r.msgid, MSG_ONE_CHAT);
	ck_assert_int_eq(request_int(&r, "toid"), 9);
	ck_assert_str_eq(request_str(&r, "msg"), "hello");
	ck_assert_str_eq(request_str(&r, "time"), "2024-01-01 10:00:00");
	/* time is optional, and null counts as absent. */
	parse_ok("{\"msgid\":6,\"toid\":9,\"msg\":\"hello\"}");
	ck_assert_ptr_null(request_str(&r, "time"));
	parse_ok("{\"msgid\":6,\"toid\":9,\"msg\":\"hello\",\"time\":null}");
	ck_assert_ptr_null(request_str(&r, "time"));
}
END_TEST

START_TEST(test_add_friend)
{
	parse_ok("{\"msgid\":7,\"id\":1,\"friendid\":2}");
	ck_assert_int_eq(r.msgid, MSG_ADD_FRIEND);
	ck_assert_int_eq(request_int(&r, "friendid"), 2);
}
END_TEST

START_TEST(test_create_group)
{
	parse_ok("{\"msgid\":8,\"id\":1,\"groupname\":\"g1\","
	    "\"groupdesc\":\"a group\"}");
	ck_assert_int_eq(r.msgid, MSG_CREATE_GROUP);
	ck_assert_str_eq(request_str(&r, "groupname"), "g1");
	ck_assert_str_eq(request_str(&r, "groupdesc"), "a group");
	/* groupdesc is optional and may be empty. */
	parse_ok("{\"msgid\":8,\"groupname\":\"g1\"}");
	ck_assert_ptr_null(request_str(&r, "groupdesc"));
	parse_ok("{\"msgid\":8,\"groupname\":\"g1\",\"groupdesc\":\"\"}");
	ck_assert_str_eq(request_str(&r, "groupdesc"), "");
}
END_TEST

START_TEST(test_add_group)
{
	parse_ok("{\"msgid\":9,\"groupid\":5}");
	ck_assert_int_eq(r.msgid, MSG_ADD_GROUP);
	ck_assert_int_eq(request_int(&r, "groupid"), 5);
}
END_TEST

START_TEST(test_group_chat)
{
	parse_ok("{\"msgid\":10,\"groupid\":5,\"msg\":\"hi all\","
	    "\"time\":\"t\"}");
	ck_assert_int_eq(r.msgid, MSG_GROUP_CHAT);
	ck_assert_int_eq(request_int(&r, "groupid"), 5);
	ck_assert_str_eq(request_str(&r, "msg"), "hi all");
	ck_assert_str_eq(request_str(&r, "time"), "t");
}
END_TEST

START_TEST(test_del_friend)
{
	parse_ok("{\"msgid\":13,\"friendid\":3}");
	ck_assert_int_eq(r.msgid, MSG_DEL_FRIEND);
	ck_assert_int_eq(request_int(&r, "friendid"), 3);
}
END_TEST

START_TEST(test_quit_group)
{
	parse_ok("{\"msgid\":14,\"groupid\":4}");
	ck_assert_int_eq(r.msgid, MSG_QUIT_GROUP);
	ck_assert_int_eq(request_int(&r, "groupid"), 4);
}
END_TEST

START_TEST(test_lists_and_ping)
{
	parse_ok("{\"msgid\":15}");
	ck_assert_int_eq(r.msgid, MSG_FRIEND_LIST);
	parse_ok("{\"msgid\":16}");
	ck_assert_int_eq(r.msgid, MSG_GROUP_LIST);
	parse_ok("{\"msgid\":17,\"groupid\":8}");
	ck_assert_int_eq(r.msgid, MSG_GROUP_MEMBERS);
	ck_assert_int_eq(request_int(&r, "groupid"), 8);
	parse_ok("{\"msgid\":18}");
	ck_assert_int_eq(r.msgid, MSG_PING);
	/* Whitespace and key order do not matter; unknown keys are ignored. */
	parse_ok(" {\n\t\"extra\" : [1, {\"x\": null}],\r\n \"msgid\" : 18 } ");
	ck_assert_int_eq(r.msgid, MSG_PING);
}
END_TEST

START_TEST(test_field_accessors)
{
	parse_ok("{\"msgid\":6,\"toid\":9,\"msg\":\"m\",\"n\":null}");
	/* Absent, null or of the other type: 0 / NULL. */
	ck_assert_int_eq(request_int(&r, "nothere"), 0);
	ck_assert_ptr_null(request_str(&r, "nothere"));
	ck_assert_int_eq(request_int(&r, "msg"), 0);
	ck_assert_ptr_null(request_str(&r, "toid"));
	ck_assert_int_eq(request_int(&r, "n"), 0);
	ck_assert_ptr_null(request_str(&r, "n"));
	/* Names are case-sensitive. */
	ck_assert_int_eq(request_int(&r, "TOID"), 0);
}
END_TEST

START_TEST(test_integer_range)
{
	/* Integers up to 2^53 - 1, negative ones and exponent forms with
	 * an integral value are integers. */
	parse_ok("{\"msgid\":7,\"friendid\":9007199254740991}");
	ck_assert(request_int(&r, "friendid") == 9007199254740991LL);
	parse_ok("{\"msgid\":7,\"friendid\":-9007199254740991}");
	ck_assert(request_int(&r, "friendid") == -9007199254740991LL);
	parse_ok("{\"msgid\":7,\"friendid\":1e3}");
	ck_assert_int_eq(request_int(&r, "friendid"), 1000);
	parse_ok("{\"msgid\":7,\"friendid\":2.0}");
	ck_assert_int_eq(request_int(&r, "friendid"), 2);
	parse_ok("{\"msgid\":18.0}");
	ck_assert_int_eq(r.msgid, 18);
	parse_fails("{\"msgid\":7,\"friendid\":9007199254740993}",
	    CERR_BAD_REQUEST, "friendid");
	parse_fails("{\"msgid\":7,\"friendid\":1e300}", CERR_BAD_REQUEST,
	    "friendid");
	parse_fails("{\"msgid\":7,\"friendid\":0.5}", CERR_BAD_REQUEST,
	    "friendid");
}
END_TEST

/* --- JSON-level errors ----------------------------------------------- */

START_TEST(test_invalid_json)
{
	parse_fails("{", CERR_BAD_JSON, NULL);
	parse_fails("{\"msgid\":18,}", CERR_BAD_JSON, NULL);
	parse_fails("{\"msgid\":18", CERR_BAD_JSON, NULL);
	parse_fails("{]", CERR_BAD_JSON, NULL);
	parse_fails("{\"msgid\":[}]", CERR_BAD_JSON, NULL);
	parse_fails("{msgid:18}", CERR_BAD_JSON, NULL);
	parse_fails("{'msgid':18}", CERR_BAD_JSON, NULL);
	parse_fails("{\"msgid\":18,\"msg\":\"\\ud800\"}", CERR_BAD_JSON, NULL);
	parse_fails("", CERR_BAD_JSON, NULL);
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_ptr_null(r.seq);
}
END_TEST

START_TEST(test_not_an_object)
{
	parse_fails("[1]", CERR_BAD_JSON, NULL);
	parse_fails("[{\"msgid\":18}]", CERR_BAD_JSON, NULL);
	parse_fails("\"x\"", CERR_BAD_JSON, NULL);
	parse_fails("18", CERR_BAD_JSON, NULL);
	parse_fails("null", CERR_BAD_JSON, NULL);
	parse_fails("true", CERR_BAD_JSON, NULL);
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_ptr_null(r.seq);
}
END_TEST

START_TEST(test_length_is_respected)
{
	/* Only buf[0..len) is parsed. */
	const char *s = "{\"msgid\":18}{\"msgid\":99}";

	ck_assert_int_eq(parse_len(s, 12), 0);
	ck_assert_int_eq(r.msgid, 18);
	ck_assert_int_eq(parse_len(s, 11), CERR_BAD_JSON);
}
END_TEST

/* --- msgid ------------------------------------------------------------ */

START_TEST(test_msgid_missing_or_bad)
{
	parse_fails("{}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"id\":1,\"password\":\"x\"}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":\"18\"}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":1.5}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":null}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":true}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":[18]}", CERR_BAD_REQUEST, "msgid");
	parse_fails("{\"msgid\":{}}", CERR_BAD_REQUEST, "msgid");
	/* Case-sensitive. */
	parse_fails("{\"MSGID\":18}", CERR_BAD_REQUEST, "msgid");
	ck_assert_int_eq(r.msgid, 0);
}
END_TEST

START_TEST(test_msgid_unknown)
{
	parse_fails("{\"msgid\":99}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":0}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":-1}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":20}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":1000001}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":4294967297}", CERR_UNKNOWN_MSGID, NULL);
	parse_fails("{\"msgid\":-9007199254740991}", CERR_UNKNOWN_MSGID, NULL);
}
END_TEST

START_TEST(test_msgid_server_only)
{
	static const int ids[] = { MSG_LOGIN_ACK, MSG_REG_ACK, MSG_ERROR,
	    MSG_ACK, MSG_PRESENCE };
	char json[64];
	size_t i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		(void)snprintf(json, sizeof(json), "{\"msgid\":%d}", ids[i]);
		parse_fails(json, CERR_UNKNOWN_MSGID, NULL);
		/* The msgid was readable, so it is filled for the ERROR. */
		ck_assert_int_eq(r.msgid, ids[i]);
	}
}
END_TEST

START_TEST(test_msgid_every_request)
{
	/* Exactly 1,3,4,6-10,13-18 are requests; all others are not. */
	static const char *const valid[MSG_MAX + 2] = {
		[1] = "{\"msgid\":1,\"id\":1,\"password\":\"p\"}",
		[3] = "{\"msgid\":3}",
		[4] = "{\"msgid\":4,\"name\":\"n\",\"password\":\"p\"}",
		[6] = "{\"msgid\":6,\"toid\":1,\"msg\":\"m\"}",
		[7] = "{\"msgid\":7,\"friendid\":1}",
		[8] = "{\"msgid\":8,\"groupname\":\"g\"}",
		[9] = "{\"msgid\":9,\"groupid\":1}",
		[10] = "{\"msgid\":10,\"groupid\":1,\"msg\":\"m\"}",
		[13] = "{\"msgid\":13,\"friendid\":1}",
		[14] = "{\"msgid\":14,\"groupid\":1}",
		[15] = "{\"msgid\":15}",
		[16] = "{\"msgid\":16}",
		[17] = "{\"msgid\":17,\"groupid\":1}",
		[18] = "{\"msgid\":18}",
	};
	char json[64];
	int id;

	for (id = 1; id <= MSG_MAX + 1; id++) {
		if (valid[id] != NULL) {
			parse_ok(valid[id]);
			ck_assert_int_eq(r.msgid, id);
		} else {
			(void)snprintf(json, sizeof(json), "{\"msgid\":%d}",
			    id);
			parse_fails(json, CERR_UNKNOWN_MSGID, NULL);
		}
	}
}
END_TEST

/* --- fields ----------------------------------------------------------- */

START_TEST(test_missing_fields)
{
	parse_fails("{\"msgid\":1,\"password\":\"p\"}", CERR_BAD_REQUEST, "id");
	parse_fails("{\"msgid\":1,\"id\":1}", CERR_BAD_REQUEST, "password");
	parse_fails("{\"msgid\":4,\"password\":\"p\"}", CERR_BAD_REQUEST,
	    "name");
	parse_fails("{\"msgid\":4,\"name\":\"n\"}", CERR_BAD_REQUEST,
	    "password");
	parse_fails("{\"msgid\":6,\"msg\":\"m\"}", CERR_BAD_REQUEST, "toid");
	parse_fails("{\"msgid\":6,\"toid\":1}", CERR_BAD_REQUEST, "msg");
	parse_fails("{\"msgid\":7}", CERR_BAD_REQUEST, "friendid");
	parse_fails("{\"msgid\":8,\"groupdesc\":\"d\"}", CERR_BAD_REQUEST,
	    "groupname");
	parse_fails("{\"msgid\":9}", CERR_BAD_REQUEST, "groupid");
	parse_fails("{\"msgid\":10,\"msg\":\"m\"}", CERR_BAD_REQUEST,
	    "groupid");
	parse_fails("{\"msgid\":10,\"groupid\":1}", CERR_BAD_REQUEST, "msg");
	parse_fails("{\"msgid\":13}", CERR_BAD_REQUEST, "friendid");
	parse_fails("{\"msgid\":14}", CERR_BAD_REQUEST, "groupid");
	parse_fails("{\"msgid\":17}", CERR_BAD_REQUEST, "groupid");
	/* null counts as missing for a required field. */
	parse_fails("{\"msgid\":7,\"friendid\":null}", CERR_BAD_REQUEST,
	    "friendid");
	/* Case-sensitive field names. */
	parse_fails("{\"msgid\":7,\"FriendId\":1}", CERR_BAD_REQUEST,
	    "friendid");
}
END_TEST

START_TEST(test_wrong_types)
{
	/* A string where an integer is expected. */
	parse_fails("{\"msgid\":1,\"id\":\"42\",\"password\":\"p\"}",
	    CERR_BAD_REQUEST, "id");
	parse_fails("{\"msgid\":6,\"toid\":\"9\",\"msg\":\"m\"}",
	    CERR_BAD_REQUEST, "toid");
	parse_fails("{\"msgid\":9,\"groupid\":true}", CERR_BAD_REQUEST,
	    "groupid");
	parse_fails("{\"msgid\":9,\"groupid\":[1]}", CERR_BAD_REQUEST,
	    "groupid");
	parse_fails("{\"msgid\":9,\"groupid\":{\"id\":1}}", CERR_BAD_REQUEST,
	    "groupid");
	parse_fails("{\"msgid\":7,\"friendid\":1.25}", CERR_BAD_REQUEST,
	    "friendid");
	/* An integer where a string is expected. */
	parse_fails("{\"msgid\":1,\"id\":1,\"password\":123}",
	    CERR_BAD_REQUEST, "password");
	parse_fails("{\"msgid\":4,\"name\":5,\"password\":\"p\"}",
	    CERR_BAD_REQUEST, "name");
	parse_fails("{\"msgid\":6,\"toid\":9,\"msg\":7}", CERR_BAD_REQUEST,
	    "msg");
	parse_fails("{\"msgid\":6,\"toid\":9,\"msg\":[\"m\"]}",
	    CERR_BAD_REQUEST, "msg");
	parse_fails("{\"msgid\":6,\"toid\":9,\"msg\":\"m\",\"time\":1}",
	    CERR_BAD_REQUEST, "time");
	parse_fails("{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":false}",
	    CERR_BAD_REQUEST, "groupdesc");
}
END_TEST

START_TEST(test_empty_strings)
{
	parse_fails("{\"msgid\":4,\"name\":\"\",\"password\":\"p\"}",
	    CERR_BAD_REQUEST, "name");
	parse_fails("{\"msgid\":4,\"name\":\"n\",\"password\":\"\"}",
	    CERR_BAD_REQUEST, "password");
	parse_fails("{\"msgid\":1,\"id\":1,\"password\":\"\"}",
	    CERR_BAD_REQUEST, "password");
	parse_fails("{\"msgid\":6,\"toid\":9,\"msg\":\"\"}", CERR_BAD_REQUEST,
	    "msg");
	parse_fails("{\"msgid\":10,\"groupid\":9,\"msg\":\"\"}",
	    CERR_BAD_REQUEST, "msg");
	parse_fails("{\"msgid\":8,\"groupname\":\"\"}", CERR_BAD_REQUEST,
	    "groupname");
	/* Optional time may be empty. */
	parse_ok("{\"msgid\":6,\"toid\":9,\"msg\":\"m\",\"time\":\"\"}");
}
END_TEST

/* Parse {"msgid":4,"name":<name>,"password":"p"}. */
static int
parse_reg_name(const char *name)
{
	char json[512];

	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":4,\"name\":\"%s\",\"password\":\"p\"}", name);
	return parse(json);
}

START_TEST(test_name_length)
{
	char *n64 = repeat("a", PROTO_NAME_MAX);
	char *n65 = repeat("a", PROTO_NAME_MAX + 1);
	char *zh63 = repeat("\xe5\xbc\xa0", 21);	/* 21 x U+5F20 */
	char *zh66 = repeat("\xe5\xbc\xa0", 22);
	char json[512];

	ck_assert_int_eq(parse_reg_name(n64), 0);
	ck_assert_str_eq(request_str(&r, "name"), n64);
	ck_assert_int_eq(parse_reg_name(n65), CERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(errmsg, "\"name\""));
	/* The limit is in bytes of UTF-8, not characters. */
	ck_assert_int_eq(parse_reg_name(zh63), 0);
	ck_assert_int_eq(parse_reg_name(zh66), CERR_BAD_REQUEST);
	/* Group names have the same limit. */
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":8,\"groupname\":\"%s\"}", n64);
	parse_ok(json);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":8,\"groupname\":\"%s\"}", n65);
	parse_fails(json, CERR_BAD_REQUEST, "groupname");
	free(n64);
	free(n65);
	free(zh63);
	free(zh66);
}
END_TEST

START_TEST(test_other_length_limits)
{
	char *p128 = repeat("p", PROTO_PASSWORD_MAX);
	char *p129 = repeat("p", PROTO_PASSWORD_MAX + 1);
	char *d255 = repeat("d", PROTO_GROUPDESC_MAX);
	char *d256 = repeat("d", PROTO_GROUPDESC_MAX + 1);
	char *t64 = repeat("t", 64), *t65 = repeat("t", 65);
	char json[1024];

	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":1,\"id\":1,\"password\":\"%s\"}", p128);
	parse_ok(json);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":1,\"id\":1,\"password\":\"%s\"}", p129);
	parse_fails(json, CERR_BAD_REQUEST, "password");
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":\"%s\"}", d255);
	parse_ok(json);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":\"%s\"}", d256);
	parse_fails(json, CERR_BAD_REQUEST, "groupdesc");
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"m\",\"time\":\"%s\"}", t64);
	parse_ok(json);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"m\",\"time\":\"%s\"}", t65);
	parse_fails(json, CERR_BAD_REQUEST, "time");
	free(p128);
	free(p129);
	free(d255);
	free(d256);
	free(t64);
	free(t65);
}
END_TEST

START_TEST(test_name_control_chars)
{
	ck_assert_int_eq(parse_reg_name("a\\u0001b"), CERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(errmsg, "\"name\""));
	ck_assert_int_eq(parse_reg_name("a\\tb"), CERR_BAD_REQUEST);
	ck_assert_int_eq(parse_reg_name("a\\nb"), CERR_BAD_REQUEST);
	ck_assert_int_eq(parse_reg_name("a\\u001fb"), CERR_BAD_REQUEST);
	ck_assert_int_eq(parse_reg_name("a\\u007fb"), CERR_BAD_REQUEST);
	ck_assert_int_eq(parse_reg_name("a\\u0085b"), CERR_BAD_REQUEST);
	ck_assert_int_eq(parse_reg_name("a\\u009fb"), CERR_BAD_REQUEST);
	/* A raw control byte inside a JSON string is not JSON at all (and
	 * a raw NUL would cut the name short): invalid JSON.  DEL is not a
	 * JSON control character but not printable either. */
	ck_assert_int_eq(parse_reg_name("a\x01" "b"), CERR_BAD_JSON);
	ck_assert_int_eq(parse_reg_name("a\x7f" "b"), CERR_BAD_REQUEST);
	/* Group names as well. */
	parse_fails("{\"msgid\":8,\"groupname\":\"g\\u0002\"}",
	    CERR_BAD_REQUEST, "groupname");
	/* Printable non-ASCII and spaces are fine. */
	ck_assert_int_eq(parse_reg_name("a b"), 0);
	ck_assert_int_eq(parse_reg_name("\\u00a0x\\u00e9"), 0);
	ck_assert_str_eq(request_str(&r, "name"), "\xc2\xa0x\xc3\xa9");
}
END_TEST

START_TEST(test_message_may_hold_controls)
{
	/* Only names are restricted to printable text. */
	parse_ok("{\"msgid\":6,\"toid\":1,\"msg\":\"line1\\nline2\\t\\u0001\"}");
	ck_assert_str_eq(request_str(&r, "msg"), "line1\nline2\t\x01");
	/* DEL raw in a message is fine (it is not a JSON control byte). */
	parse_ok("{\"msgid\":6,\"toid\":1,\"msg\":\"a\x7f" "b\"}");
}
END_TEST

/*
 * Regression (found by fuzz_request, tests/fuzz/regressions): a raw NUL
 * inside a string was accepted and cut the field short, so a name
 * "ab<NUL>cd" registered as "ab" and a message lost its tail.
 */
START_TEST(test_raw_nul_in_string_refused)
{
	static const char reg[] = "{\"msgid\":4,\"name\":\"ab\0cd\","
	    "\"password\":\"p\"}";
	static const char chat[] = "{\"msgid\":6,\"toid\":1,\"msg\":\"x\0y\"}";

	ck_assert_int_eq(request_parse(&r, reg, sizeof(reg) - 1, &lim, errmsg,
	    sizeof(errmsg)), CERR_BAD_JSON);
	request_free(&r);
	ck_assert_int_eq(request_parse(&r, chat, sizeof(chat) - 1, &lim,
	    errmsg, sizeof(errmsg)), CERR_BAD_JSON);
	ck_assert_int_eq(r.msgid, MSG_ONE_CHAT);
}
END_TEST

START_TEST(test_message_length)
{
	char *m = repeat("m", MAX_MESSAGE), *m1 = repeat("m", MAX_MESSAGE + 1);
	/* 33 x 3 bytes = 99 bytes, 34 x 3 = 102 bytes */
	char *zh99 = repeat("\xe4\xbd\xa0", 33), *zh102 = repeat("\xe4\xbd\xa0", 34);
	char json[1024];

	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", m);
	parse_ok(json);
	ck_assert_uint_eq(strlen(request_str(&r, "msg")), MAX_MESSAGE);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", m1);
	parse_fails(json, CERR_BAD_REQUEST, "msg");
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":10,\"groupid\":1,\"msg\":\"%s\"}", m1);
	parse_fails(json, CERR_BAD_REQUEST, "msg");
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":10,\"groupid\":1,\"msg\":\"%s\"}", zh99);
	parse_ok(json);
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":10,\"groupid\":1,\"msg\":\"%s\"}", zh102);
	parse_fails(json, CERR_BAD_REQUEST, "msg");
	/* The limit applies to the decoded text: 50 "\u00e9" escapes are
	 * 300 bytes of JSON but 100 bytes of text. */
	free(m);
	m = repeat("\\u00e9", 50);	/* 100 bytes decoded */
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", m);
	parse_ok(json);
	free(m);
	m = repeat("\\u00e9", 51);	/* 102 bytes decoded */
	(void)snprintf(json, sizeof(json),
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", m);
	parse_fails(json, CERR_BAD_REQUEST, "msg");
	free(m);
	free(m1);
	free(zh99);
	free(zh102);
}
END_TEST

START_TEST(test_invalid_utf8)
{
	/* A raw 0xff byte. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"a\xff" "b\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Overlong NUL. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"a\xc0\x80" "b\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Overlong 3-byte. */
	parse_fails("{\"msgid\":10,\"groupid\":1,\"msg\":\"\xe0\x80\xaf\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Encoded surrogate. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"\xed\xa0\x80\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Truncated sequence before the closing quote. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"\xe4\xbd\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Lone continuation byte. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"\x80\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Above U+10FFFF. */
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"\xf4\x90\x80\x80\"}",
	    CERR_BAD_REQUEST, "msg");
	/* Every string field is checked, names and passwords included. */
	parse_fails("{\"msgid\":4,\"name\":\"\xff\",\"password\":\"p\"}",
	    CERR_BAD_REQUEST, "name");
	parse_fails("{\"msgid\":4,\"name\":\"n\",\"password\":\"\xc0\x80\"}",
	    CERR_BAD_REQUEST, "password");
	parse_fails("{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":\"\xfe\"}",
	    CERR_BAD_REQUEST, "groupdesc");
	parse_fails("{\"msgid\":6,\"toid\":1,\"msg\":\"m\",\"time\":\"\xff\"}",
	    CERR_BAD_REQUEST, "time");
}
END_TEST

START_TEST(test_chinese_text)
{
	/* 你好，世界 and an emoji, raw and as escapes. */
	parse_ok("{\"msgid\":6,\"toid\":1,\"msg\":\"\xe4\xbd\xa0\xe5\xa5\xbd"
	    "\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80\"}");
	ck_assert_str_eq(request_str(&r, "msg"), "\xe4\xbd\xa0\xe5\xa5\xbd"
	    "\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80");
	parse_ok("{\"msgid\":6,\"toid\":1,\"msg\":\"\\u4f60\\u597d "
	    "\\ud83d\\ude00\"}");
	ck_assert_str_eq(request_str(&r, "msg"),
	    "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80");
	/* 张三 as a user name and 群聊 as a group name. */
	ck_assert_int_eq(parse_reg_name("\xe5\xbc\xa0\xe4\xb8\x89"), 0);
	ck_assert_str_eq(request_str(&r, "name"), "\xe5\xbc\xa0\xe4\xb8\x89");
	parse_ok("{\"msgid\":8,\"groupname\":\"\xe7\xbe\xa4\xe8\x81\x8a\","
	    "\"groupdesc\":\"\xe6\x8f\x8f\xe8\xbf\xb0\"}");
}
END_TEST

/* --- seq -------------------------------------------------------------- */

START_TEST(test_seq_kept)
{
	parse_ok("{\"msgid\":18,\"seq\":7}");
	ck_assert_ptr_nonnull(r.seq);
	ck_assert(cJSON_IsNumber(r.seq));
	ck_assert_int_eq(r.seq->valueint, 7);
	parse_ok("{\"seq\":\"abc\",\"msgid\":18}");
	ck_assert_ptr_nonnull(r.seq);
	ck_assert(cJSON_IsString(r.seq));
	ck_assert_str_eq(r.seq->valuestring, "abc");
	parse_ok("{\"msgid\":18,\"seq\":null}");
	ck_assert_ptr_nonnull(r.seq);
	ck_assert(cJSON_IsNull(r.seq));
	parse_ok("{\"msgid\":18,\"seq\":true}");
	ck_assert_ptr_nonnull(r.seq);
	ck_assert(cJSON_IsTrue(r.seq));
	parse_ok("{\"msgid\":18,\"seq\":-1.5}");
	ck_assert_ptr_nonnull(r.seq);
	ck_assert(cJSON_IsNumber(r.seq));
	ck_assert(r.seq->valuedouble == -1.5);
	parse_ok("{\"msgid\":18}");
	ck_assert_ptr_null(r.seq);
}
END_TEST

START_TEST(test_seq_not_scalar)
{
	parse_fails("{\"msgid\":18,\"seq\":{\"a\":1}}", CERR_BAD_REQUEST, "seq");
	ck_assert_ptr_null(r.seq);
	parse_fails("{\"msgid\":18,\"seq\":[1]}", CERR_BAD_REQUEST, "seq");
	ck_assert_ptr_null(r.seq);
	parse_fails("{\"seq\":{}}", CERR_BAD_REQUEST, NULL);
	ck_assert_ptr_null(r.seq);
}
END_TEST

START_TEST(test_seq_and_msgid_on_error)
{
	/* A bad field: both msgid and seq are filled for the ERROR. */
	parse_fails("{\"msgid\":6,\"seq\":42,\"toid\":\"x\",\"msg\":\"hi\"}",
	    CERR_BAD_REQUEST, "toid");
	ck_assert_int_eq(r.msgid, 6);
	ck_assert_ptr_nonnull(r.seq);
	ck_assert_int_eq(r.seq->valueint, 42);
	parse_fails("{\"seq\":\"s1\",\"msgid\":4,\"name\":\"\","
	    "\"password\":\"p\"}", CERR_BAD_REQUEST, "name");
	ck_assert_int_eq(r.msgid, 4);
	ck_assert_str_eq(r.seq->valuestring, "s1");
	/* Unknown msgid: seq still echoed. */
	parse_fails("{\"msgid\":99,\"seq\":\"s2\"}", CERR_UNKNOWN_MSGID, NULL);
	ck_assert_ptr_nonnull(r.seq);
	ck_assert_str_eq(r.seq->valuestring, "s2");
	/* Unusable msgid: seq still echoed, msgid 0. */
	parse_fails("{\"msgid\":\"x\",\"seq\":3}", CERR_BAD_REQUEST, "msgid");
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_ptr_nonnull(r.seq);
	ck_assert_int_eq(r.seq->valueint, 3);
	parse_fails("{\"seq\":5}", CERR_BAD_REQUEST, "msgid");
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_int_eq(r.seq->valueint, 5);
	/* Invalid JSON: nothing could be read. */
	parse_fails("{\"msgid\":6,\"seq\":1,", CERR_BAD_JSON, NULL);
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_ptr_null(r.seq);
}
END_TEST

START_TEST(test_free_is_idempotent)
{
	parse_ok("{\"msgid\":18}");
	request_free(&r);
	ck_assert_ptr_null(r.root);
	request_free(&r);
	parse_fails("nope", CERR_BAD_JSON, NULL);
	request_free(&r);
	request_free(&r);
}
END_TEST

/* --- anonymous requests ---------------------------------------------- */

START_TEST(test_allowed_anonymous)
{
	int id;

	for (id = -1; id <= 30; id++) {
		int want = id == MSG_LOGIN || id == MSG_REG || id == MSG_PING;

		ck_assert_int_eq(request_allowed_anonymous(id) != 0, want);
	}
	ck_assert_int_eq(request_allowed_anonymous(INT_MAX), 0);
}
END_TEST

/*
 * --- Regression: a bug found in src/request.c and fixed ----------------
 *
 * request.h: "even on failure r->seq and r->msgid are filled when they
 * could be read, so the ERROR can echo them".  request_parse() checks seq
 * before it reads msgid and returns at once when seq is an object or an
 * array, so a readable msgid is left at 0 and the ERROR lacks refmsgid.
 * request.c now reads msgid first.
 */
START_TEST(test_bug_msgid_filled_when_seq_not_scalar)
{
	parse_fails("{\"msgid\":6,\"seq\":{\"a\":1},\"toid\":1,\"msg\":\"m\"}",
	    CERR_BAD_REQUEST, "seq");
	ck_assert_ptr_null(r.seq);
	ck_assert_int_eq(r.msgid, 6);
}
END_TEST

/* --- utf8 ------------------------------------------------------------- */

#define VALID(s)	utf8_valid((s), sizeof(s) - 1)
#define PRINTABLE(s)	utf8_printable((s), sizeof(s) - 1)

START_TEST(test_utf8_valid_sequences)
{
	ck_assert_int_eq(utf8_valid("", 0), 1);
	ck_assert_int_eq(VALID("hello, world"), 1);
	ck_assert_int_eq(VALID("\x7f"), 1);
	ck_assert_int_eq(VALID("a\0b"), 1);		/* NUL is ASCII */
	ck_assert_int_eq(VALID("\xc2\x80"), 1);		/* U+0080 */
	ck_assert_int_eq(VALID("\xc3\xa9"), 1);		/* U+00E9 */
	ck_assert_int_eq(VALID("\xdf\xbf"), 1);		/* U+07FF */
	ck_assert_int_eq(VALID("\xe0\xa0\x80"), 1);	/* U+0800 */
	ck_assert_int_eq(VALID("\xe2\x82\xac"), 1);	/* U+20AC */
	ck_assert_int_eq(VALID("\xe4\xbd\xa0\xe5\xa5\xbd"), 1);
	ck_assert_int_eq(VALID("\xed\x9f\xbf"), 1);	/* U+D7FF */
	ck_assert_int_eq(VALID("\xee\x80\x80"), 1);	/* U+E000 */
	ck_assert_int_eq(VALID("\xef\xbf\xbf"), 1);	/* U+FFFF */
	ck_assert_int_eq(VALID("\xf0\x90\x80\x80"), 1);	/* U+10000 */
	ck_assert_int_eq(VALID("\xf0\x9f\x98\x80"), 1);	/* U+1F600 */
	ck_assert_int_eq(VALID("\xf4\x8f\xbf\xbf"), 1);	/* U+10FFFF */
	ck_assert_int_eq(VALID("a\xc3\xa9z\xe2\x82\xac!\xf0\x9f\x98\x80."), 1);
	/* Only len bytes are examined. */
	ck_assert_int_eq(utf8_valid("ab\xff", 2), 1);
}
END_TEST

START_TEST(test_utf8_truncated)
{
	ck_assert_int_eq(VALID("\xc3"), 0);
	ck_assert_int_eq(VALID("\xe2\x82"), 0);
	ck_assert_int_eq(VALID("\xe2"), 0);
	ck_assert_int_eq(VALID("\xf0\x9f\x98"), 0);
	ck_assert_int_eq(VALID("abc\xf0"), 0);
	/* Complete in memory but cut by len. */
	ck_assert_int_eq(utf8_valid("\xe2\x82\xac", 2), 0);
	ck_assert_int_eq(utf8_valid("\xf0\x9f\x98\x80", 3), 0);
	ck_assert_int_eq(utf8_printable("\xe2\x82\xac", 1), 0);
	/* A continuation byte missing in the middle. */
	ck_assert_int_eq(VALID("\xc3" "a"), 0);
	ck_assert_int_eq(VALID("\xe2\x82" "a"), 0);
	ck_assert_int_eq(VALID("\xe2" "a\xac"), 0);
	ck_assert_int_eq(VALID("\xf0\x9f\x98" "a"), 0);
}
END_TEST

START_TEST(test_utf8_bad_bytes)
{
	ck_assert_int_eq(VALID("\x80"), 0);		/* lone continuation */
	ck_assert_int_eq(VALID("\xbf"), 0);
	ck_assert_int_eq(VALID("a\x80" "b"), 0);
	ck_assert_int_eq(VALID("\xc3\xa9\xa9"), 0);	/* one too many */
	ck_assert_int_eq(VALID("\xfe"), 0);
	ck_assert_int_eq(VALID("\xff"), 0);
	ck_assert_int_eq(VALID("\xf8\x88\x80\x80\x80"), 0);	/* 5 bytes */
	ck_assert_int_eq(VALID("\xfc\x84\x80\x80\x80\x80"), 0);	/* 6 bytes */
}
END_TEST

START_TEST(test_utf8_overlong)
{
	ck_assert_int_eq(VALID("\xc0\x80"), 0);		/* U+0000 */
	ck_assert_int_eq(VALID("\xc0\xaf"), 0);		/* '/' */
	ck_assert_int_eq(VALID("\xc1\xbf"), 0);		/* U+007F */
	ck_assert_int_eq(VALID("\xe0\x80\x80"), 0);	/* U+0000 */
	ck_assert_int_eq(VALID("\xe0\x80\xaf"), 0);	/* '/' */
	ck_assert_int_eq(VALID("\xe0\x9f\xbf"), 0);	/* U+07FF */
	ck_assert_int_eq(VALID("\xf0\x80\x80\x80"), 0);	/* U+0000 */
	ck_assert_int_eq(VALID("\xf0\x8f\xbf\xbf"), 0);	/* U+FFFF */
	ck_assert_int_eq(PRINTABLE("\xc0\x80"), 0);
	ck_assert_int_eq(PRINTABLE("\xe0\x80\x80"), 0);
}
END_TEST

START_TEST(test_utf8_surrogates)
{
	ck_assert_int_eq(VALID("\xed\xa0\x80"), 0);	/* U+D800 */
	ck_assert_int_eq(VALID("\xed\xaf\xbf"), 0);	/* U+DBFF */
	ck_assert_int_eq(VALID("\xed\xb0\x80"), 0);	/* U+DC00 */
	ck_assert_int_eq(VALID("\xed\xbf\xbf"), 0);	/* U+DFFF */
	/* A CESU-8 style pair is two surrogates, not one code point. */
	ck_assert_int_eq(VALID("\xed\xa0\xbd\xed\xb8\x80"), 0);
	ck_assert_int_eq(PRINTABLE("\xed\xa0\x80"), 0);
}
END_TEST

START_TEST(test_utf8_above_max)
{
	ck_assert_int_eq(VALID("\xf4\x90\x80\x80"), 0);	/* U+110000 */
	ck_assert_int_eq(VALID("\xf4\xbf\xbf\xbf"), 0);
	ck_assert_int_eq(VALID("\xf5\x80\x80\x80"), 0);
	ck_assert_int_eq(VALID("\xf7\xbf\xbf\xbf"), 0);
	ck_assert_int_eq(PRINTABLE("\xf4\x90\x80\x80"), 0);
}
END_TEST

START_TEST(test_utf8_printable)
{
	ck_assert_int_eq(utf8_printable("", 0), 1);
	ck_assert_int_eq(PRINTABLE("Alice Smith ~!@#"), 1);
	ck_assert_int_eq(PRINTABLE(" "), 1);
	ck_assert_int_eq(PRINTABLE("\xe5\xbc\xa0\xe4\xb8\x89"), 1);
	ck_assert_int_eq(PRINTABLE("\xc2\xa0"), 1);		/* U+00A0 */
	ck_assert_int_eq(PRINTABLE("\xc3\xa9"), 1);
	ck_assert_int_eq(PRINTABLE("\xf0\x9f\x98\x80"), 1);
	ck_assert_int_eq(PRINTABLE("\xf4\x8f\xbf\xbf"), 1);
	/* C0 controls. */
	ck_assert_int_eq(PRINTABLE("\0"), 0);
	ck_assert_int_eq(PRINTABLE("a\x01"), 0);
	ck_assert_int_eq(PRINTABLE("\t"), 0);
	ck_assert_int_eq(PRINTABLE("a\nb"), 0);
	ck_assert_int_eq(PRINTABLE("\r"), 0);
	ck_assert_int_eq(PRINTABLE("\x1b[31m"), 0);
	ck_assert_int_eq(PRINTABLE("\x1f"), 0);
	/* DEL. */
	ck_assert_int_eq(PRINTABLE("\x7f"), 0);
	ck_assert_int_eq(PRINTABLE("abc\x7f"), 0);
	/* C1 controls: U+0080..U+009F. */
	ck_assert_int_eq(PRINTABLE("\xc2\x80"), 0);
	ck_assert_int_eq(PRINTABLE("\xc2\x85"), 0);
	ck_assert_int_eq(PRINTABLE("x\xc2\x9f"), 0);
	/* ...which are valid UTF-8 all the same. */
	ck_assert_int_eq(VALID("\xc2\x80"), 1);
	ck_assert_int_eq(VALID("\x7f"), 1);
	ck_assert_int_eq(VALID("\t\n\x01"), 1);
	/* Invalid UTF-8 is not printable. */
	ck_assert_int_eq(PRINTABLE("\xff"), 0);
	ck_assert_int_eq(PRINTABLE("\xc3"), 0);
	ck_assert_int_eq(PRINTABLE("\x80"), 0);
}
END_TEST

START_TEST(test_utf8_every_two_byte_lead)
{
	/* Exhaustive over 2-byte sequences: valid exactly when the lead is
	 * C2..DF and the second byte a continuation. */
	unsigned a, b;
	int bad = 0;

	for (a = 0x80; a <= 0xff; a++) {
		for (b = 0; b <= 0xff; b++) {
			char s[2] = { (char)a, (char)b };
			int want = a >= 0xc2 && a <= 0xdf &&
			    (b & 0xc0) == 0x80;

			if (utf8_valid(s, 2) != want)
				bad++;
		}
	}
	ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_utf8_every_code_point)
{
	/* Encode every scalar value: valid; printable unless a control. */
	unsigned long cp;
	int bad = 0;

	for (cp = 0; cp <= 0x10ffff; cp++) {
		unsigned char s[4];
		size_t n;
		int want_valid = !(cp >= 0xd800 && cp <= 0xdfff);
		int want_print = want_valid && cp >= 0x20 &&
		    !(cp >= 0x7f && cp < 0xa0);

		if (cp < 0x80) {
			s[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			s[0] = (unsigned char)(0xc0 | (cp >> 6));
			s[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			s[0] = (unsigned char)(0xe0 | (cp >> 12));
			s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			s[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			s[0] = (unsigned char)(0xf0 | (cp >> 18));
			s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			s[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		if (utf8_valid((const char *)s, n) != want_valid ||
		    utf8_printable((const char *)s, n) != want_print)
			bad++;
	}
	ck_assert_int_eq(bad, 0);
}
END_TEST

/* --- proto_strerror -------------------------------------------------- */

START_TEST(test_strerror_all)
{
	int i, j;

	for (i = 0; i <= CERR_MAX; i++) {
		const char *s = proto_strerror(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s), 0);
		ck_assert_str_ne(s, "unknown error");
		for (j = 0; j < i; j++)
			ck_assert_str_ne(s, proto_strerror(j));
	}
	ck_assert_int_eq(CERR_MAX, 16);
	/* Texts the protocol documents. */
	ck_assert_str_eq(proto_strerror(CERR_OK), "ok");
	ck_assert_str_eq(proto_strerror(CERR_BAD_REQUEST), "bad request");
	ck_assert_str_eq(proto_strerror(CERR_TOO_LARGE), "frame too large");
	ck_assert_str_eq(proto_strerror(CERR_BAD_JSON), "invalid JSON");
	ck_assert_str_eq(proto_strerror(CERR_UNKNOWN_MSGID), "unknown msgid");
	ck_assert_str_eq(proto_strerror(CERR_FRAMING), "bad framing");
}
END_TEST

START_TEST(test_strerror_out_of_range)
{
	ck_assert_str_eq(proto_strerror(-1), "unknown error");
	ck_assert_str_eq(proto_strerror(17), "unknown error");
	ck_assert_str_eq(proto_strerror(CERR_MAX + 1), "unknown error");
	ck_assert_str_eq(proto_strerror(1000), "unknown error");
	ck_assert_str_eq(proto_strerror(INT_MAX), "unknown error");
	ck_assert_str_eq(proto_strerror(INT_MIN), "unknown error");
}
END_TEST

/*
 * The chat ACK is written directly (reply_ack_line); it must be the line
 * reply_ok builds through cJSON, for every kind of seq a request may
 * carry, and jbuf_json must print each seq as cJSON does.
 */
START_TEST(test_ack_line_like_reply_ok)
{
	static const char *seqs[] = {
		"0", "1", "-1", "-0", "7", "2147483647", "2147483648",
		"-2147483648", "-2147483649", "9007199254740991", "1.5",
		"-0.25", "1e15", "1e300", "3.0", "\"\"", "\"abc\"",
		"\"a\\\"b\\\\c\\n\\u0001\"", "\"\u00e9\\u00e9\"",
		"true", "false", "null",
	};
	static const char *status[] = { "delivered", "stored", "a\"b" };
	struct jbuf b, j;
	cJSON *seq, *obj, *extra;
	char *want, *line;
	size_t i, k, len;

	jbuf_init(&b);
	jbuf_init(&j);
	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		seq = cJSON_Parse(seqs[i]);
		ck_assert_msg(seq != NULL, "%s", seqs[i]);
		want = cJSON_PrintUnformatted(seq);
		j.len = 0;
		jbuf_json(&j, seq);
		ck_assert_int_eq(j.oom, 0);
		ck_assert_msg(j.len == strlen(want) &&
		    memcmp(j.p, want, j.len) == 0,
		    "jbuf_json(%s) gave %.*s, cJSON %s", seqs[i], (int)j.len,
		    j.p, want);
		free(want);
		for (k = 0; k < sizeof(status) / sizeof(status[0]); k++) {
			/* What reply_ok builds. */
			obj = cJSON_CreateObject();
			cJSON_AddNumberToObject(obj, "msgid", MSG_ACK);
			cJSON_AddNumberToObject(obj, "refmsgid", MSG_ONE_CHAT);
			cJSON_AddItemToObject(obj, "seq",
			    cJSON_Duplicate(seq, 1));
			cJSON_AddNumberToObject(obj, "errno", 0);
			extra = cJSON_CreateString(status[k]);
			cJSON_AddItemToObject(obj, "status", extra);
			line = reply_line(obj, &len);
			ck_assert_ptr_nonnull(line);
			reply_ack_line(&b, MSG_ONE_CHAT, seq, status[k]);
			ck_assert_int_eq(b.oom, 0);
			ck_assert_msg(b.len == len && memcmp(b.p, line, len) == 0,
			    "seq %s: reply_ack_line gave %.*s, reply_ok %s",
			    seqs[i], (int)b.len, b.p, line);
			free(line);
			cJSON_Delete(obj);
		}
		cJSON_Delete(seq);
	}
	jbuf_free(&b);
	jbuf_free(&j);
}
END_TEST

/* jbuf_str(s) must give cJSON_PrintUnformatted's bytes for the string s. */
static void
check_str_like_cjson(const char *s)
{
	struct jbuf b;
	cJSON *item = cJSON_CreateString(s);
	char *want = cJSON_PrintUnformatted(item);

	ck_assert_ptr_nonnull(want);
	jbuf_init(&b);
	jbuf_lit(&b, "x");	/* appends after what is there */
	jbuf_str(&b, s);
	ck_assert_int_eq(b.oom, 0);
	ck_assert_uint_le(b.len, b.cap);	/* reserved enough */
	ck_assert_uint_eq(b.len, strlen(want) + 1);
	ck_assert_msg(memcmp(b.p + 1, want, b.len - 1) == 0,
	    "jbuf_str(\"%s\") differs from cJSON's %s", s, want);
	jbuf_free(&b);
	free(want);
	cJSON_Delete(item);
}

START_TEST(test_jsonw_str_every_byte)
{
	char s[4];
	int ch;

	check_str_like_cjson("");
	for (ch = 1; ch < 256; ch++) {
		s[0] = 'a';
		s[1] = (char)ch;
		s[2] = 'z';
		s[3] = '\0';
		check_str_like_cjson(s);
	}
	check_str_like_cjson("\xe4\xbd\xa0\xe5\xa5\xbd \"q\" \\ </tag> \x7f");
}
END_TEST

START_TEST(test_jsonw_str_random)
{
	unsigned int seed = 12345;
	char s[200];
	int i, j, n;

	for (i = 0; i < 20000; i++) {
		n = (int)(rand_r(&seed) % (sizeof(s) - 1));
		for (j = 0; j < n; j++)
			s[j] = (char)(1 + rand_r(&seed) % 255);
		s[n] = '\0';
		check_str_like_cjson(s);
	}
}
END_TEST

/* The word-at-a-time scan against the byte rule, for each byte value at
 * each position of strings up to 40 bytes, at every alignment. */
START_TEST(test_json_plain_span_every_position)
{
	char buf[64];
	size_t n, pos, align, want;
	int ch;

	for (align = 0; align < 8; align++)
		for (n = 0; n <= 40; n++) {
			memset(buf, 'a', sizeof(buf));
			ck_assert_uint_eq(json_plain_span(buf + align, n), n);
			for (pos = 0; pos < n; pos++)
				for (ch = 0; ch < 256; ch++) {
					memset(buf, ch & 1 ? 'a' : 0xe4,
					    sizeof(buf));
					buf[align + pos] = (char)ch;
					want = ch < 32 || ch == '"' ||
					    ch == '\\' ? pos : n;
					ck_assert_uint_eq(json_plain_span(
					    buf + align, n), want);
				}
		}
}
END_TEST

/* The ASCII fast path of utf8_valid: a bad byte or a good sequence after
 * runs of every length. */
START_TEST(test_utf8_after_ascii_runs)
{
	char buf[64];
	size_t n, pos;

	for (n = 1; n <= 40; n++)
		for (pos = 0; pos + 1 < n; pos++) {
			memset(buf, 'a', sizeof(buf));
			buf[pos] = (char)0xff;
			ck_assert_int_eq(utf8_valid(buf, n), 0);
			buf[pos] = (char)0xc3;
			ck_assert_int_eq(utf8_valid(buf, n), 0);
			buf[pos + 1] = (char)0xa9;
			ck_assert_int_eq(utf8_valid(buf, n), 1);
			/* Cut inside the sequence. */
			ck_assert_int_eq(utf8_valid(buf, pos + 1), 0);
		}
}
END_TEST

/* The string check of request_parse (raw control bytes, \u0000, escaped
 * quotes) at every position of a long message. */
START_TEST(test_string_check_every_position)
{
	char msg[48], json[128];
	size_t pos, len;

	for (pos = 0; pos + 6 <= 40; pos++) {
		memset(msg, 'm', 40);
		msg[40] = '\0';
		msg[pos] = '\x01';
		len = (size_t)snprintf(json, sizeof(json),
		    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", msg);
		ck_assert_int_eq(request_parse(&r, json, len, &lim, errmsg,
		    sizeof(errmsg)), CERR_BAD_JSON);
		request_free(&r);
		memcpy(msg + pos, "\\u0000", 6);
		msg[40] = '\0';
		len = (size_t)snprintf(json, sizeof(json),
		    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", msg);
		ck_assert_int_eq(request_parse(&r, json, len, &lim, errmsg,
		    sizeof(errmsg)), CERR_BAD_REQUEST);
		request_free(&r);
		memset(msg, 'm', 40);
		memcpy(msg + pos, "\\\"\\\\", 4);
		msg[40] = '\0';
		len = (size_t)snprintf(json, sizeof(json),
		    "{\"msgid\":6,\"toid\":1,\"msg\":\"%s\"}", msg);
		ck_assert_int_eq(request_parse(&r, json, len, &lim, errmsg,
		    sizeof(errmsg)), 0);
		ck_assert_uint_eq(strlen(request_str(&r, "msg")), 38);
		request_free(&r);
	}
}
END_TEST

START_TEST(test_jsonw_u64_like_cjson)
{
	/* Ids (32 bits) and millisecond times: all below 10^15, where
	 * cJSON prints a number exactly as an integer. */
	static const uint64_t v[] = { 0, 1, 9, 10, 99, 100, 2147483647ULL,
	    2147483648ULL, 4294967295ULL, 1763700000000ULL,
	    999999999999999ULL };
	struct jbuf b;
	cJSON *item;
	char *want;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		item = cJSON_CreateNumber((double)v[i]);
		want = cJSON_PrintUnformatted(item);
		jbuf_init(&b);
		jbuf_u64(&b, v[i]);
		ck_assert_uint_eq(b.len, strlen(want));
		ck_assert_msg(memcmp(b.p, want, b.len) == 0, "%s", want);
		jbuf_free(&b);
		free(want);
		cJSON_Delete(item);
	}
	jbuf_init(&b);
	jbuf_u64(&b, UINT64_MAX);
	ck_assert_uint_eq(b.len, 20);
	ck_assert(memcmp(b.p, "18446744073709551615", 20) == 0);
	jbuf_free(&b);
}
END_TEST

START_TEST(test_jsonw_grows)
{
	struct jbuf b;
	char big[5000];
	size_t i;

	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	jbuf_init(&b);
	for (i = 0; i < 3; i++)
		jbuf_str(&b, big);
	ck_assert_int_eq(b.oom, 0);
	ck_assert_uint_eq(b.len, 3 * (2 * (sizeof(big) - 1) + 2));
	jbuf_free(&b);
	ck_assert_ptr_null(b.p);
}
END_TEST

/* --- the cJSON arena (jarena.c), installed in main() as chatd does ---- */

static cJSON *
arena_parse(const char *json)
{
	int began = jarena_begin();
	cJSON *t;

	ck_assert_int_eq(began, 1);
	t = cJSON_Parse(json);
	jarena_end(began);
	ck_assert_ptr_nonnull(t);
	return t;
}

START_TEST(test_arena_counts_blocks)
{
	cJSON *t;

	ck_assert_uint_eq(jarena_in_use(), 0);
	t = arena_parse("{\"msgid\":6,\"toid\":2,\"msg\":\"hi\"}");
	/* The object, three items, three keys and a string. */
	ck_assert_uint_eq(jarena_in_use(), 8);
	cJSON_Delete(t);
	ck_assert_uint_eq(jarena_in_use(), 0);
	/* Off, cJSON allocates from malloc. */
	t = cJSON_Parse("{\"a\":\"b\"}");
	ck_assert_uint_eq(jarena_in_use(), 0);
	cJSON_Delete(t);
}
END_TEST

/* A tree still alive keeps the arena from rewinding over it. */
START_TEST(test_arena_keeps_live_tree)
{
	cJSON *a, *b, *c;

	a = arena_parse("{\"msg\":\"first message, kept\"}");
	b = arena_parse("{\"msg\":\"second\"}");
	cJSON_Delete(b);
	c = arena_parse("{\"msg\":\"third message overwrites?\"}");
	ck_assert_str_eq(cJSON_GetObjectItem(a, "msg")->valuestring,
	    "first message, kept");
	ck_assert_str_eq(cJSON_GetObjectItem(c, "msg")->valuestring,
	    "third message overwrites?");
	cJSON_Delete(a);
	cJSON_Delete(c);
	ck_assert_uint_eq(jarena_in_use(), 0);
}
END_TEST

/* What does not fit comes from malloc, and is freed there. */
START_TEST(test_arena_big_falls_back)
{
	size_t n = 200 * 1024, i;
	char *json = malloc(n + 16);
	cJSON *t, *u;

	ck_assert_ptr_nonnull(json);
	memcpy(json, "{\"msg\":\"", 8);
	for (i = 0; i < n; i++)
		json[8 + i] = (char)('a' + i % 26);
	memcpy(json + 8 + n, "\"}", 3);
	t = arena_parse(json);
	u = arena_parse(json);	/* again, with the first still alive */
	ck_assert_uint_eq(strlen(cJSON_GetObjectItem(t, "msg")->valuestring),
	    n);
	ck_assert_int_eq(memcmp(cJSON_GetObjectItem(u, "msg")->valuestring,
	    json + 8, n), 0);
	cJSON_Delete(t);
	cJSON_Delete(u);
	ck_assert_uint_eq(jarena_in_use(), 0);
	free(json);
}
END_TEST

static void *
arena_other_thread(void *arg)
{
	cJSON *t = arg;
	int began;

	if (t != NULL) {
		cJSON_Delete(t);	/* a tree freed on another thread */
		return NULL;
	}
	began = jarena_begin();	/* while the main thread has it on */
	jarena_end(began);
	return (void *)(long)began;
}

START_TEST(test_arena_threads)
{
	pthread_t th;
	void *ret;
	cJSON *t;
	int began;

	began = jarena_begin();
	ck_assert_int_eq(began, 1);
	ck_assert_int_eq(jarena_begin(), 0);	/* nested: already on */
	ck_assert_int_eq(pthread_create(&th, NULL, arena_other_thread, NULL),
	    0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_int_eq((int)(long)ret, 0);	/* not the owner */
	t = cJSON_Parse("{\"seq\":\"x\"}");
	jarena_end(began);
	ck_assert_uint_eq(jarena_in_use(), 4);	/* object, item, key, value */
	ck_assert_int_eq(pthread_create(&th, NULL, arena_other_thread, t), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_uint_eq(jarena_in_use(), 0);
	/* The first thread to turn it on owns it for good. */
	ck_assert_int_eq(pthread_create(&th, NULL, arena_other_thread, NULL),
	    0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_int_eq((int)(long)ret, 0);
	/* Rewound after the other thread's free: the next block is the
	 * arena's first again, and the count right. */
	t = arena_parse("{\"seq\":\"y\"}");
	ck_assert_uint_eq(jarena_in_use(), 4);
	cJSON_Delete(t);
	ck_assert_uint_eq(jarena_in_use(), 0);
}
END_TEST

/* request_parse's tree is the arena's, all of it back at request_free. */
START_TEST(test_arena_request)
{
	static const char chat[] = "{\"msgid\":6,\"toid\":2,\"msg\":\"hi\","
	    "\"seq\":1}";
	struct request_limits rl = { 4096 };
	struct request rq;
	char emsg[128];

	ck_assert_int_eq(request_parse(&rq, chat, sizeof(chat) - 1, &rl,
	    emsg, sizeof(emsg)), 0);
	ck_assert_uint_gt(jarena_in_use(), 0);
	ck_assert_str_eq(request_str(&rq, "msg"), "hi");
	request_free(&rq);
	ck_assert_uint_eq(jarena_in_use(), 0);
	/* And a failed parse frees its part too. */
	ck_assert_int_eq(request_parse(&rq, "{\"msgid\":6,\"toid\":[1,", 20,
	    &rl, emsg, sizeof(emsg)), CERR_BAD_JSON);
	request_free(&rq);
	ck_assert_uint_eq(jarena_in_use(), 0);
}
END_TEST

/* LOGIN_ACK: the direct writer against the construction it replaced,
 * cJSON objects printed into strings (members inside their group, the
 * group into a string again), for random lists.  The objects are
 * FRIEND_LIST's and GROUP_MEMBERS' (ack_users_json), so the test also
 * holds LOGIN_ACK's users to the same keys in the same order. */
static cJSON *
ref_users(const struct ack_users *l)
{
	cJSON *out = cJSON_CreateArray(), *objs = ack_users_json(l), *o;
	char *p;

	cJSON_ArrayForEach(o, objs) {
		p = cJSON_PrintUnformatted(o);
		cJSON_AddItemToArray(out, cJSON_CreateString(p));
		cJSON_free(p);
	}
	cJSON_Delete(objs);
	return out;
}

static char *
ref_login_ack(const struct ack_parts *a, size_t *len)
{
	cJSON *obj = cJSON_CreateObject(), *arr, *g;
	char *p, *line, text[300];
	size_t i;

	cJSON_AddNumberToObject(obj, "msgid", MSG_LOGIN_ACK);
	cJSON_AddNumberToObject(obj, "errno", 0);
	cJSON_AddNumberToObject(obj, "id", a->uid);
	cJSON_AddStringToObject(obj, "name", a->name);
	if (a->seq != NULL)
		cJSON_AddItemToObject(obj, "seq", cJSON_Duplicate(a->seq, 1));
	cJSON_AddItemToObject(obj, "friends", ref_users(a->friends));
	arr = cJSON_CreateArray();
	for (i = 0; i < a->groups->n; i++) {
		g = cJSON_CreateObject();
		cJSON_AddNumberToObject(g, "id", a->groups->v[i].id);
		cJSON_AddStringToObject(g, "groupname", a->groups->v[i].name);
		cJSON_AddStringToObject(g, "groupdesc", a->groups->v[i].desc);
		cJSON_AddItemToObject(g, "users",
		    ref_users(&a->groups->v[i].users));
		p = cJSON_PrintUnformatted(g);
		cJSON_AddItemToArray(arr, cJSON_CreateString(p));
		cJSON_free(p);
		cJSON_Delete(g);
	}
	cJSON_AddItemToObject(obj, "groups", arr);
	arr = cJSON_CreateArray();
	for (i = 0; i < a->off_n; i++) {
		memcpy(text, a->off_texts[i], a->off_lens[i]);
		text[a->off_lens[i]] = '\0';
		cJSON_AddItemToArray(arr, cJSON_CreateString(text));
	}
	cJSON_AddItemToObject(obj, "offlinemsg", arr);
	line = reply_line(obj, len);
	cJSON_Delete(obj);
	return line;
}

/* n random bytes 1..255 (none when ascii: printable ASCII only). */
static void
rand_text(unsigned int *seed, char *s, size_t max, int ascii)
{
	size_t n = rand_r(seed) % max, j;

	for (j = 0; j < n; j++)
		s[j] = (char)(ascii ? 32 + rand_r(seed) % 95 :
		    1 + rand_r(seed) % 255);
	s[n] = '\0';
}

static uint32_t
rand_id(unsigned int *seed)
{
	switch (rand_r(seed) % 3) {
	case 0: return 1 + rand_r(seed) % 100;
	case 1: return UINT32_MAX - rand_r(seed) % 3;
	default: return (uint32_t)rand_r(seed) * 2u + 1;
	}
}

static void
rand_users(unsigned int *seed, struct ack_users *l, int members)
{
	static const char *roles[] = { "creator", "normal" };
	char name[PROTO_NAME_MAX + 1];
	int i, n = rand_r(seed) % 12;

	for (i = 0; i < n; i++) {
		rand_text(seed, name, sizeof(name), rand_r(seed) % 2);
		if (members)
			ack_add_member(l, rand_id(seed), name,
			    roles[rand_r(seed) % 2]);
		else
			ack_add_friend(l, rand_id(seed), name);
		l->v[l->n - 1].online = rand_r(seed) % 2;
	}
}

START_TEST(test_login_ack_like_cjson)
{
	static const char *seqs[] = { NULL, "7", "-3", "-0", "1.5", "1e300",
	    "\"s\\\"q\\u0001\"", "{\"a\":[1,true,null]}", "[]", "false" };
	unsigned int seed = 4242;
	char name[PROTO_NAME_MAX + 1], gname[PROTO_GROUPNAME_MAX + 1];
	char gdesc[PROTO_GROUPDESC_MAX + 1], texts[4][300], *tp[4];
	size_t lens[4], reflen, k;
	struct ack_users friends;
	struct ack_groups groups;
	struct ack_parts a;
	struct jbuf out;
	cJSON *seq;
	char *ref;
	int i, j, ng;

	for (i = 0; i < 400; i++) {
		memset(&friends, 0, sizeof(friends));
		memset(&groups, 0, sizeof(groups));
		rand_users(&seed, &friends, 0);
		ng = rand_r(&seed) % 4;
		for (j = 0; j < ng; j++) {
			rand_text(&seed, gname, sizeof(gname), j % 2);
			rand_text(&seed, gdesc, sizeof(gdesc), j % 2);
			ack_add_group(&groups, rand_id(&seed), gname, gdesc,
			    "normal");
			rand_users(&seed, &groups.v[j].users, 1);
		}
		memset(&a, 0, sizeof(a));
		a.off_n = rand_r(&seed) % 5;
		for (k = 0; k < a.off_n; k++) {
			rand_text(&seed, texts[k], sizeof(texts[k]) - 1, 0);
			lens[k] = strlen(texts[k]);
			texts[k][lens[k]] = '\n';	/* as stored: not ended */
			tp[k] = texts[k];
		}
		rand_text(&seed, name, sizeof(name), 0);
		seq = seqs[i % 10] != NULL ? cJSON_Parse(seqs[i % 10]) : NULL;
		a.uid = rand_id(&seed);
		a.name = name;
		a.seq = seq;
		a.friends = &friends;
		a.groups = &groups;
		a.off_texts = tp;
		a.off_lens = lens;
		jbuf_init(&out);
		login_ack_write(&out, &a);
		ref = ref_login_ack(&a, &reflen);
		ck_assert_ptr_nonnull(ref);
		ck_assert_int_eq(out.oom, 0);
		for (k = 0; k < out.len && k < reflen && out.p[k] == ref[k];)
			k++;
		/* (The lines hold random bytes: only where they part.) */
		ck_assert_msg(out.len == reflen && k == reflen,
		    "round %d: LOGIN_ACK differs from cJSON's at byte %zu "
		    "of %zu (cJSON: %zu bytes)", i, k, out.len, reflen);
		free(ref);
		jbuf_free(&out);
		cJSON_Delete(seq);
		ack_users_free(&friends);
		ack_groups_free(&groups);
	}
}
END_TEST

/* deliver_presence_of: the friend id of a PRESENCE line as chatd writes
 * it (the one that presence_line builds), 0 for anything else. */
static uint32_t
presence_of(const char *frame)
{
	return deliver_presence_of(frame, strlen(frame));
}

/* deliver_order_of: the "tus" a chat frame ends with, else 0. */
static uint64_t
order_of(const char *frame)
{
	return deliver_order_of(frame, strlen(frame));
}

/*
 * Redis names: a claim key from the keyevent channel (any key of the
 * database that expired, another application's too) and a user channel
 * give back their uid only when they are exactly "PREFIX what:UID".
 */
START_TEST(test_cluster_names)
{
	static const struct {
		const char *name;
		uint32_t key, channel;
	} cases[] = {
		{ "chat:online:1", 1, 0 },
		{ "chat:online:4294967294", 4294967294u, 0 },
		{ "chat:user:77", 0, 77 },
		{ "chat:online:4294967295", 0, 0 },	/* UINT32_MAX */
		{ "chat:online:99999999999", 0, 0 },
		{ "chat:online:0", 0, 0 },
		{ "chat:online:007", 0, 0 },
		{ "chat:online:", 0, 0 },
		{ "chat:online:12a", 0, 0 },
		{ "chat:online:-3", 0, 0 },
		{ "chat:online:+3", 0, 0 },
		{ "chat:online: 3", 0, 0 },
		{ "chat:gone:3", 0, 0 },
		{ "other:online:3", 0, 0 },
		{ "chat:online", 0, 0 },
		{ "chat:", 0, 0 },
		{ "", 0, 0 },
	};
	struct conf c;
	char buf[CLUSTER_KEY_MAX];
	size_t i, len;

	memset(&c, 0, sizeof(c));
	(void)snprintf(c.redis_prefix, sizeof(c.redis_prefix), "chat:");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = strlen(cases[i].name);
		ck_assert_msg(cluster_key_online_uid(&c, cases[i].name, len) ==
		    cases[i].key, "key \"%s\"", cases[i].name);
		ck_assert_msg(cluster_channel_uid(&c, cases[i].name, len) ==
		    cases[i].channel, "channel \"%s\"", cases[i].name);
	}
	/* The length is the name's, not up to a NUL. */
	ck_assert_uint_eq(cluster_key_online_uid(&c, "chat:online:123", 13),
	    1);
	/* What chatd writes reads back. */
	cluster_key_online(&c, 4242, buf, sizeof(buf));
	ck_assert_uint_eq(cluster_key_online_uid(&c, buf, strlen(buf)), 4242);
	cluster_channel_user(&c, 4242, buf, sizeof(buf));
	ck_assert_uint_eq(cluster_channel_uid(&c, buf, strlen(buf)), 4242);
	cluster_key_gone(&c, 4242, buf, sizeof(buf));
	ck_assert_str_eq(buf, "chat:gone:4242");
	ck_assert_uint_eq(cluster_key_online_uid(&c, buf, strlen(buf)), 0);
	/* An empty prefix. */
	c.redis_prefix[0] = '\0';
	ck_assert_uint_eq(cluster_key_online_uid(&c, "online:5", 8), 5);
	ck_assert_uint_eq(cluster_key_online_uid(&c, "chat:online:5", 13), 0);
}
END_TEST

START_TEST(test_order_of)
{
	ck_assert_uint_eq(order_of("{\"msgid\":6,\"id\":1,\"name\":\"a\","
	    "\"toid\":2,\"msg\":\"}\\\",\\\"tus\\\":9}\",\"time\":\"t\","
	    "\"ts\":1714564800123,\"tus\":1714564800123456}\n"),
	    1714564800123456ull);
	ck_assert_uint_eq(order_of("{\"ts\":1,\"tus\":1}"), 1);
	/* The largest: 18 digits. */
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":999999999999999999}"),
	    999999999999999999ull);
	/* A frame from an older chatd, "tus" not last or not a number, 19
	 * digits, a key ending in "tus", lines cut short. */
	ck_assert_uint_eq(order_of("{\"msgid\":6,\"ts\":1714564800123}"), 0);
	ck_assert_uint_eq(order_of("{\"tus\":5,\"ts\":6}"), 0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":}"), 0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":-5}"), 0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":\"5\"}"), 0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":1234567890123456789}"),
	    0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"atus\":5}"), 0);
	ck_assert_uint_eq(order_of("{\"x\":1,\"tus\":5"), 0);
	ck_assert_uint_eq(order_of("\"tus\":5}"), 0);
	ck_assert_uint_eq(order_of("5}"), 0);
	ck_assert_uint_eq(order_of("}\n"), 0);
	ck_assert_uint_eq(order_of("\n"), 0);
	ck_assert_uint_eq(order_of(""), 0);
}
END_TEST

START_TEST(test_presence_of)
{
	cJSON *o = cJSON_CreateObject();
	char *line;

	/* What a cJSON print of the notice looks like. */
	cJSON_AddNumberToObject(o, "msgid", MSG_PRESENCE);
	cJSON_AddNumberToObject(o, "id", 4294967295.0);
	cJSON_AddStringToObject(o, "state", "online");
	line = cJSON_PrintUnformatted(o);
	ck_assert_ptr_nonnull(line);
	ck_assert_uint_eq(presence_of(line), 4294967295u);
	cJSON_free(line);
	cJSON_Delete(o);

	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":42,"
	    "\"state\":\"offline\"}\n"), 42);
	/* Not a notice: other msgids, an id out of range or missing, a
	 * line cut short, another key order. */
	ck_assert_uint_eq(presence_of("{\"msgid\":6,\"id\":42,"
	    "\"from\":\"x\"}"), 0);
	ck_assert_uint_eq(presence_of("{\"msgid\":190,\"id\":42,}"), 0);
	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":4294967296,"),
	    0);
	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":99999999999999"
	    "999999999,"), 0);
	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":,"), 0);
	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":42"), 0);
	ck_assert_uint_eq(presence_of("{\"msgid\":19,\"id\":"), 0);
	ck_assert_uint_eq(presence_of("{\"id\":42,\"msgid\":19,"), 0);
	ck_assert_uint_eq(presence_of(""), 0);
}
END_TEST

static Suite *
proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("valid");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_login);
	tcase_add_test(tc, test_loginout);
	tcase_add_test(tc, test_reg);
	tcase_add_test(tc, test_one_chat);
	tcase_add_test(tc, test_add_friend);
	tcase_add_test(tc, test_create_group);
	tcase_add_test(tc, test_add_group);
	tcase_add_test(tc, test_group_chat);
	tcase_add_test(tc, test_del_friend);
	tcase_add_test(tc, test_quit_group);
	tcase_add_test(tc, test_lists_and_ping);
	tcase_add_test(tc, test_field_accessors);
	tcase_add_test(tc, test_integer_range);
	suite_add_tcase(s, tc);

	tc = tcase_create("json");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_invalid_json);
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_length_is_respected);
	tcase_add_test(tc, test_msgid_missing_or_bad);
	tcase_add_test(tc, test_msgid_unknown);
	tcase_add_test(tc, test_msgid_server_only);
	tcase_add_test(tc, test_msgid_every_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_missing_fields);
	tcase_add_test(tc, test_wrong_types);
	tcase_add_test(tc, test_empty_strings);
	tcase_add_test(tc, test_name_length);
	tcase_add_test(tc, test_other_length_limits);
	tcase_add_test(tc, test_name_control_chars);
	tcase_add_test(tc, test_message_may_hold_controls);
	tcase_add_test(tc, test_raw_nul_in_string_refused);
	tcase_add_test(tc, test_string_check_every_position);
	tcase_add_test(tc, test_message_length);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_test(tc, test_chinese_text);
	tcase_add_test(tc, test_seq_kept);
	tcase_add_test(tc, test_seq_not_scalar);
	tcase_add_test(tc, test_seq_and_msgid_on_error);
	tcase_add_test(tc, test_free_is_idempotent);
	tcase_add_test(tc, test_allowed_anonymous);
	suite_add_tcase(s, tc);

	/* Regression of a fixed bug in src/request.c. */
	tc = tcase_create("regressions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bug_msgid_filled_when_seq_not_scalar);
	suite_add_tcase(s, tc);

	tc = tcase_create("utf8");
	tcase_add_test(tc, test_utf8_valid_sequences);
	tcase_add_test(tc, test_utf8_truncated);
	tcase_add_test(tc, test_utf8_bad_bytes);
	tcase_add_test(tc, test_utf8_overlong);
	tcase_add_test(tc, test_utf8_surrogates);
	tcase_add_test(tc, test_utf8_above_max);
	tcase_add_test(tc, test_utf8_printable);
	tcase_add_test(tc, test_utf8_every_two_byte_lead);
	tcase_add_test(tc, test_utf8_every_code_point);
	tcase_add_test(tc, test_utf8_after_ascii_runs);
	suite_add_tcase(s, tc);

	tc = tcase_create("jsonw");
	tcase_add_test(tc, test_jsonw_str_every_byte);
	tcase_add_test(tc, test_jsonw_str_random);
	tcase_add_test(tc, test_jsonw_u64_like_cjson);
	tcase_add_test(tc, test_jsonw_grows);
	tcase_add_test(tc, test_ack_line_like_reply_ok);
	tcase_add_test(tc, test_login_ack_like_cjson);
	tcase_add_test(tc, test_json_plain_span_every_position);
	suite_add_tcase(s, tc);

	tc = tcase_create("arena");
	tcase_add_test(tc, test_arena_counts_blocks);
	tcase_add_test(tc, test_arena_keeps_live_tree);
	tcase_add_test(tc, test_arena_big_falls_back);
	tcase_add_test(tc, test_arena_threads);
	tcase_add_test(tc, test_arena_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("presence");
	tcase_add_test(tc, test_presence_of);
	tcase_add_test(tc, test_order_of);
	tcase_add_test(tc, test_cluster_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("strerror");
	tcase_add_test(tc, test_strerror_all);
	tcase_add_test(tc, test_strerror_out_of_range);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int nfailed;

	jarena_install();	/* every cJSON tree here, as in chatd */
	sr = srunner_create(proto_suite());

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
