/*
 * request.c - the table of client requests and their validation.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "protocol.h"
#include "jarena.h"
#include "jsonw.h"
#include "request.h"
#include "utf8.h"

enum field_type { F_NONE = 0, F_INT, F_STR };
/* How a string is checked beyond UTF-8 validity. */
enum str_kind { S_TEXT, S_NAME, S_MSG };

struct field_spec {
	const char *name;
	enum field_type type;
	int required;
	enum str_kind kind;
	size_t min, max;	/* bytes, for strings (max 0: max_message) */
};

struct msg_spec {
	int msgid;
	struct field_spec fields[4];
};

#define FEND { NULL, F_NONE, 0, 0, 0, 0 }
#define FINT(n) { n, F_INT, 1, 0, 0, 0 }
#define FNAME(n, max) { n, F_STR, 1, S_NAME, 1, max }
#define FPASS { "password", F_STR, 1, S_TEXT, 1, PROTO_PASSWORD_MAX }
#define FMSG { "msg", F_STR, 1, S_MSG, 1, 0 }
#define FTIME { "time", F_STR, 0, S_TEXT, 0, 64 }

static const struct msg_spec msg_specs[] = {
	{ MSG_LOGIN, { FINT("id"), FPASS, FEND } },
	{ MSG_LOGINOUT, { FEND } },
	{ MSG_REG, { FNAME("name", PROTO_NAME_MAX), FPASS, FEND } },
	{ MSG_ONE_CHAT, { FINT("toid"), FMSG, FTIME, FEND } },
	{ MSG_ADD_FRIEND, { FINT("friendid"), FEND } },
	{ MSG_CREATE_GROUP, { FNAME("groupname", PROTO_GROUPNAME_MAX),
	    { "groupdesc", F_STR, 0, S_TEXT, 0, PROTO_GROUPDESC_MAX }, FEND } },
	{ MSG_ADD_GROUP, { FINT("groupid"), FEND } },
	{ MSG_GROUP_CHAT, { FINT("groupid"), FMSG, FTIME, FEND } },
	{ MSG_DEL_FRIEND, { FINT("friendid"), FEND } },
	{ MSG_QUIT_GROUP, { FINT("groupid"), FEND } },
	{ MSG_FRIEND_LIST, { FEND } },
	{ MSG_GROUP_LIST, { FEND } },
	{ MSG_GROUP_MEMBERS, { FINT("groupid"), FEND } },
	{ MSG_PING, { FEND } },
};

static const struct msg_spec *
msg_spec_find(int msgid)
{
	size_t i;

	for (i = 0; i < sizeof(msg_specs) / sizeof(msg_specs[0]); i++)
		if (msg_specs[i].msgid == msgid)
			return &msg_specs[i];
	return NULL;
}

int
request_allowed_anonymous(int msgid)
{
	return msgid == MSG_LOGIN || msgid == MSG_REG || msgid == MSG_PING;
}

/* 1 when item is a number with an integral value that fits in 53 bits. */
static int
json_is_integer(const cJSON *item)
{
	double d;

	if (!cJSON_IsNumber(item))
		return 0;
	d = item->valuedouble;
	return isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740991.0;
}

static int
field_check(const struct field_spec *fs, const cJSON *item,
    const struct request_limits *lim, char *errmsg, size_t errlen)
{
	size_t len, max;

	if (item == NULL || cJSON_IsNull(item)) {
		if (!fs->required)
			return 0;
		(void)snprintf(errmsg, errlen, "missing field \"%s\"",
		    fs->name);
		return CERR_BAD_REQUEST;
	}
	if (fs->type == F_INT) {
		if (!json_is_integer(item)) {
			(void)snprintf(errmsg, errlen,
			    "field \"%s\" must be an integer", fs->name);
			return CERR_BAD_REQUEST;
		}
		return 0;
	}
	if (!cJSON_IsString(item)) {
		(void)snprintf(errmsg, errlen, "field \"%s\" must be a string",
		    fs->name);
		return CERR_BAD_REQUEST;
	}
	len = strlen(item->valuestring);
	max = fs->max != 0 ? fs->max : lim->max_message;
	if (len < fs->min) {
		(void)snprintf(errmsg, errlen, "field \"%s\" must not be empty",
		    fs->name);
		return CERR_BAD_REQUEST;
	}
	if (len > max) {
		(void)snprintf(errmsg, errlen,
		    "field \"%s\" is longer than %zu bytes", fs->name, max);
		return CERR_BAD_REQUEST;
	}
	if (fs->kind == S_NAME ? !utf8_printable(item->valuestring, len) :
	    !utf8_valid(item->valuestring, len)) {
		(void)snprintf(errmsg, errlen, "field \"%s\" is not valid "
		    "UTF-8%s", fs->name, fs->kind == S_NAME ?
		    " text without control characters" : "");
		return CERR_BAD_REQUEST;
	}
	return 0;
}

/*
 * Checks cJSON does not make on strings: 11 (invalid JSON) for a raw
 * control byte inside a string, which JSON forbids and cJSON would keep
 * (a raw NUL cuts every C string after it short), and 5 for the escape
 * \u0000, valid JSON but equally cut short ("a\u0000b" registered as
 * "a").  0 when the strings are clean.
 */
static int
json_string_check(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while ((p = memchr(p, '"', (size_t)(end - p))) != NULL) {
		/* Inside a string, after its opening quote. */
		for (p++;;) {
			p += json_plain_span(p, (size_t)(end - p));
			if (p == end)
				return 0;
			if ((unsigned char)*p < 0x20)
				return CERR_BAD_JSON;
			if (*p++ == '"')
				break;
			/* A backslash: skip the escaped byte. */
			if (p == end)
				return 0;
			if (*p == 'u' && end - p > 4 &&
			    memcmp(p + 1, "0000", 4) == 0)
				return CERR_BAD_REQUEST;
			p++;
		}
	}
	return 0;
}

int
request_parse(struct request *r, const char *buf, size_t len,
    const struct request_limits *lim, char *errmsg, size_t errlen)
{
	const struct msg_spec *ms;
	const cJSON *id;
	size_t i;
	int rc, arena;

	memset(r, 0, sizeof(*r));
	/* The tree dies in request_free: from the arena (jarena.h). */
	arena = jarena_begin();
	r->root = cJSON_ParseWithLength(buf, len);
	jarena_end(arena);
	if (r->root == NULL || !cJSON_IsObject(r->root)) {
		(void)snprintf(errmsg, errlen, "invalid JSON");
		return CERR_BAD_JSON;
	}
	id = cJSON_GetObjectItemCaseSensitive(r->root, "msgid");
	if (json_is_integer(id) && id->valuedouble >= 1 &&
	    id->valuedouble <= MSG_MAX)
		r->msgid = (int)id->valuedouble;	/* for refmsgid */
	r->seq = cJSON_GetObjectItemCaseSensitive(r->root, "seq");
	if (r->seq != NULL && (cJSON_IsObject(r->seq) ||
	    cJSON_IsArray(r->seq))) {
		r->seq = NULL;
		(void)snprintf(errmsg, errlen, "field \"seq\" must be a scalar");
		return CERR_BAD_REQUEST;
	}
	if ((rc = json_string_check(buf, len)) != 0) {
		(void)snprintf(errmsg, errlen, rc == CERR_BAD_JSON ?
		    "invalid JSON: control character inside a string" :
		    "strings must not contain U+0000");
		return rc;
	}
	if (id == NULL) {
		(void)snprintf(errmsg, errlen, "missing field \"msgid\"");
		return CERR_BAD_REQUEST;
	}
	if (!json_is_integer(id)) {
		(void)snprintf(errmsg, errlen, "field \"msgid\" must be an "
		    "integer");
		return CERR_BAD_REQUEST;
	}
	if (id->valuedouble < 1 || id->valuedouble > 1000000) {
		(void)snprintf(errmsg, errlen, "unknown msgid %.0f",
		    id->valuedouble);
		return CERR_UNKNOWN_MSGID;
	}
	r->msgid = (int)id->valuedouble;
	if ((ms = msg_spec_find(r->msgid)) == NULL) {
		(void)snprintf(errmsg, errlen, "msgid %d is not a request",
		    r->msgid);
		return CERR_UNKNOWN_MSGID;
	}
	for (i = 0; ms->fields[i].name != NULL; i++) {
		const struct field_spec *fs = &ms->fields[i];

		rc = field_check(fs, cJSON_GetObjectItemCaseSensitive(r->root,
		    fs->name), lim, errmsg, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void
request_free(struct request *r)
{
	cJSON_Delete(r->root);
	r->root = NULL;
}

long long
request_int(const struct request *r, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, name);

	return cJSON_IsNumber(item) ? (long long)item->valuedouble : 0;
}

const char *
request_str(const struct request *r, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, name);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}
