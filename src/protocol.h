/*
 * protocol.h - the wire contract shared by chatd, the client library, the
 * benchmark and the tests: message ids, errno values and field limits.
 * See chat-protocol(7).  Values are fixed by the classic protocol and
 * DESIGN.md; never renumber them.
 */
#ifndef CHATD_PROTOCOL_H
#define CHATD_PROTOCOL_H

enum msgid {
	MSG_LOGIN = 1,
	MSG_LOGIN_ACK = 2,
	MSG_LOGINOUT = 3,
	MSG_REG = 4,
	MSG_REG_ACK = 5,
	MSG_ONE_CHAT = 6,
	MSG_ADD_FRIEND = 7,
	MSG_CREATE_GROUP = 8,
	MSG_ADD_GROUP = 9,
	MSG_GROUP_CHAT = 10,
	MSG_ERROR = 11,
	MSG_ACK = 12,
	MSG_DEL_FRIEND = 13,
	MSG_QUIT_GROUP = 14,
	MSG_FRIEND_LIST = 15,
	MSG_GROUP_LIST = 16,
	MSG_GROUP_MEMBERS = 17,
	MSG_PING = 18,
	MSG_PRESENCE = 19,
	MSG_MAX = 19,
};

enum chat_errno {
	CERR_OK = 0,
	CERR_AUTH = 1,		/* wrong id or password */
	CERR_ONLINE = 2,	/* already online */
	CERR_NAME_TAKEN = 3,
	CERR_NOT_LOGGED_IN = 4,
	CERR_BAD_REQUEST = 5,
	CERR_NO_USER = 6,
	CERR_NO_GROUP = 7,
	CERR_NOT_MEMBER = 8,
	CERR_EXISTS = 9,
	CERR_TOO_LARGE = 10,
	CERR_BAD_JSON = 11,
	CERR_RATE = 12,
	CERR_UNAVAILABLE = 13,
	CERR_UNKNOWN_MSGID = 14,
	CERR_FRAMING = 15,
	CERR_ALREADY_LOGGED_IN = 16,
	CERR_MAX = 16,
};

/* Field limits, in bytes of UTF-8 (see chat-protocol(7)). */
#define PROTO_NAME_MAX		64	/* user name */
#define PROTO_PASSWORD_MAX	128
#define PROTO_GROUPNAME_MAX	64
#define PROTO_GROUPDESC_MAX	255

/* Returns the fixed English text for an errno value ("unknown error" else). */
const char *proto_strerror(int err);

#endif
