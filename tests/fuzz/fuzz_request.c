/*
 * fuzz_request.c - libFuzzer target for request parsing and validation
 * (src/request.c, src/utf8.c).
 *
 * The input is one frame's bytes, exactly as conn.c hands them to the
 * parser: not NUL-terminated, so any read past the end is an ASan report.
 * Each input is parsed twice, with the default max_message and with a
 * tiny one and a short errmsg buffer, and must satisfy:
 *
 *   - the result is 0, 5 (bad request), 11 (invalid JSON) or 14 (unknown
 *     msgid), and a failure comes with a non-empty reason;
 *   - a smaller max_message can only turn 0 into 5, never change another
 *     result (only "msg" depends on it);
 *   - r->seq, when set, is a scalar;
 *   - on 0 the msgid is a request and every field chat-protocol(7) lists
 *     for it is readable as its handler reads it: integers are integral
 *     and within 53 bits, strings are well-formed UTF-8 (checked here by
 *     an independent decoder, not src/utf8.c) within their length limits,
 *     names have no control characters, and no string holds a NUL that
 *     would cut the C string the handler reads short;
 *   - request_free releases everything (LeakSanitizer runs per input),
 *     the blocks from chatd's cJSON arena (jarena.c) included.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "jarena.h"
#include "protocol.h"
#include "request.h"

#define MAX_MESSAGE	4096	/* chatd.conf's default max_message */
#define SMALL_MESSAGE	8

enum kind { K_END = 0, K_INT, K_TEXT, K_NAME, K_MSG };

struct want_field {
	const char *name;
	enum kind kind;
	int required;
	size_t max;		/* bytes; K_MSG: the max_message in force */
};

/*
 * The request fields of chat-protocol(7), MESSAGES, written out again
 * here rather than taken from request.c's table so the two can disagree.
 */
static const struct {
	int msgid;
	struct want_field f[4];
} wants[] = {
	{ MSG_LOGIN, { { "id", K_INT, 1, 0 },
	    { "password", K_TEXT, 1, PROTO_PASSWORD_MAX } } },
	{ MSG_LOGINOUT, { { NULL, K_END, 0, 0 } } },
	{ MSG_REG, { { "name", K_NAME, 1, PROTO_NAME_MAX },
	    { "password", K_TEXT, 1, PROTO_PASSWORD_MAX } } },
	{ MSG_ONE_CHAT, { { "toid", K_INT, 1, 0 }, { "msg", K_MSG, 1, 0 },
	    { "time", K_TEXT, 0, 64 } } },
	{ MSG_ADD_FRIEND, { { "friendid", K_INT, 1, 0 } } },
	{ MSG_CREATE_GROUP, { { "groupname", K_NAME, 1, PROTO_GROUPNAME_MAX },
	    { "groupdesc", K_TEXT, 0, PROTO_GROUPDESC_MAX } } },
	{ MSG_ADD_GROUP, { { "groupid", K_INT, 1, 0 } } },
	{ MSG_GROUP_CHAT, { { "groupid", K_INT, 1, 0 },
	    { "msg", K_MSG, 1, 0 }, { "time", K_TEXT, 0, 64 } } },
	{ MSG_DEL_FRIEND, { { "friendid", K_INT, 1, 0 } } },
	{ MSG_QUIT_GROUP, { { "groupid", K_INT, 1, 0 } } },
	{ MSG_FRIEND_LIST, { { NULL, K_END, 0, 0 } } },
	{ MSG_GROUP_LIST, { { NULL, K_END, 0, 0 } } },
	{ MSG_GROUP_MEMBERS, { { "groupid", K_INT, 1, 0 } } },
	{ MSG_PING, { { NULL, K_END, 0, 0 } } },
};

/*
 * Decode one UTF-8 sequence at s[0..len); returns its length and the
 * code point in *cp, or 0 when it is ill-formed (overlong, surrogate,
 * above U+10FFFF, truncated, stray continuation byte).
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n, i;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* 1 when s is well-formed UTF-8 and, for names, has no C0, DEL or C1. */
static int
text_ok(const char *s, size_t len, int name)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		if ((n = utf8_decode(u + i, len - i, &cp)) == 0)
			return 0;
		if (name && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
			return 0;
		i += n;
	}
	return 1;
}

/*
 * 1 when a JSON string in buf[0..len) holds a raw NUL byte.  The parser
 * would keep it, and every C string read from that value would be cut
 * short: a REG of "a<NUL>b" would register "a", a password would match
 * any text after its prefix.  A request that validates has none.
 */
static int
has_raw_nul_in_string(const char *buf, size_t len)
{
	size_t i;
	int in_string = 0;

	for (i = 0; i < len; i++) {
		if (!in_string)
			in_string = buf[i] == '"';
		else if (buf[i] == '\\')
			i++;
		else if (buf[i] == '"')
			in_string = 0;
		else if (buf[i] == '\0')
			return 1;
	}
	return 0;
}

/* Read every field the msgid's handler will read, as it reads them. */
static void
check_fields(const struct request *r, size_t max_message)
{
	const struct want_field *wf = NULL;
	const cJSON *item;
	const char *s;
	size_t i, len, max;
	long long v;

	for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
		if (wants[i].msgid == r->msgid)
			wf = wants[i].f;
	FUZZ_REQUIRE(wf != NULL);
	for (; wf->name != NULL; wf++) {
		item = cJSON_GetObjectItemCaseSensitive(r->root, wf->name);
		if (item == NULL || cJSON_IsNull(item)) {
			FUZZ_REQUIRE(!wf->required);
			FUZZ_REQUIRE(wf->kind == K_INT ||
			    request_str(r, wf->name) == NULL);
			continue;
		}
		if (wf->kind == K_INT) {
			FUZZ_REQUIRE(cJSON_IsNumber(item));
			FUZZ_REQUIRE(isfinite(item->valuedouble));
			FUZZ_REQUIRE(item->valuedouble ==
			    floor(item->valuedouble));
			FUZZ_REQUIRE(fabs(item->valuedouble) <=
			    9007199254740991.0);
			v = request_int(r, wf->name);
			FUZZ_REQUIRE((double)v == item->valuedouble);
			continue;
		}
		s = request_str(r, wf->name);
		FUZZ_REQUIRE(s != NULL);
		len = strlen(s);
		max = wf->kind == K_MSG ? max_message : wf->max;
		FUZZ_REQUIRE(len <= max);
		FUZZ_REQUIRE(!wf->required || len > 0);
		FUZZ_REQUIRE(text_ok(s, len, wf->kind == K_NAME));
	}
}

/* Parse once and check what holds for every result; returns it. */
static int
parse_once(const char *buf, size_t len, size_t max_message, size_t errlen)
{
	struct request_limits lim = { max_message };
	struct request r;
	char errmsg[128];
	int rc;

	FUZZ_REQUIRE(errlen <= sizeof(errmsg));
	memset(errmsg, 0x5a, sizeof(errmsg));
	errmsg[0] = '\0';
	rc = request_parse(&r, buf, len, &lim, errmsg, errlen);
	FUZZ_REQUIRE(rc == CERR_OK || rc == CERR_BAD_REQUEST ||
	    rc == CERR_BAD_JSON || rc == CERR_UNKNOWN_MSGID);
	if (rc != CERR_OK) {
		FUZZ_REQUIRE(memchr(errmsg, '\0', errlen) != NULL);
		FUZZ_REQUIRE(errmsg[0] != '\0');
		/* Nothing written past the buffer the caller gave. */
		FUZZ_REQUIRE(errlen == sizeof(errmsg) ||
		    (unsigned char)errmsg[errlen] == 0x5a);
	}
	/* The ERROR echoes these, so they hold whatever the result. */
	FUZZ_REQUIRE(r.msgid >= 0);
	if (r.seq != NULL)
		FUZZ_REQUIRE(!cJSON_IsObject(r.seq) && !cJSON_IsArray(r.seq));
	if (rc == CERR_OK) {
		FUZZ_REQUIRE(r.root != NULL && cJSON_IsObject(r.root));
		FUZZ_REQUIRE(r.msgid >= 1);
		check_fields(&r, max_message);
		FUZZ_REQUIRE(!has_raw_nul_in_string(buf, len));
	}
	request_free(&r);
	FUZZ_REQUIRE(r.root == NULL);
	/* The tree was the arena's (cJSON hooks installed below) and is
	 * all freed. */
	FUZZ_REQUIRE(jarena_in_use() == 0);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int installed;
	const char *buf = (const char *)data;
	int big, small;

	if (!installed) {
		jarena_install();	/* as chatd does */
		installed = 1;
	}
	big = parse_once(buf, size, MAX_MESSAGE, 128);
	small = parse_once(buf, size, SMALL_MESSAGE, 16);
	if (big == CERR_OK)
		FUZZ_REQUIRE(small == CERR_OK || small == CERR_BAD_REQUEST);
	else
		FUZZ_REQUIRE(small == big);
	return 0;
}
