/*
 * proto.c - helpers for the wire contract of protocol.h, shared by chatd
 * and the client library (libchatc links this file too, so nothing here
 * may depend on the server's other modules).
 *
 * proto_strerror() comes first and stays self-contained; server-side
 * protocol helpers follow it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>

#include "protocol.h"

/*
 * --- proto_strerror: errno value -> fixed English text -------------------
 *
 * The texts are part of the protocol (chat-protocol(7) and DESIGN.md list
 * them); clients and tests compare them, so change them only together with
 * the documentation.
 */
static const char *const proto_errtab[] = {
	[CERR_OK] = "ok",
	[CERR_AUTH] = "wrong id or password",
	[CERR_ONLINE] = "already online",
	[CERR_NAME_TAKEN] = "name taken",
	[CERR_NOT_LOGGED_IN] = "not logged in",
	[CERR_BAD_REQUEST] = "bad request",
	[CERR_NO_USER] = "no such user",
	[CERR_NO_GROUP] = "no such group",
	[CERR_NOT_MEMBER] = "not a member",
	[CERR_EXISTS] = "already exists",
	[CERR_TOO_LARGE] = "frame too large",
	[CERR_BAD_JSON] = "invalid JSON",
	[CERR_RATE] = "rate limited",
	[CERR_UNAVAILABLE] = "service unavailable",
	[CERR_UNKNOWN_MSGID] = "unknown msgid",
	[CERR_FRAMING] = "bad framing",
	[CERR_ALREADY_LOGGED_IN] = "already logged in on this connection",
};

_Static_assert(sizeof(proto_errtab) / sizeof(proto_errtab[0]) ==
    CERR_MAX + 1, "proto_errtab must have one text per chat_errno");

const char *
proto_strerror(int err)
{
	if (err < 0 || err > CERR_MAX || proto_errtab[err] == NULL)
		return "unknown error";
	return proto_errtab[err];
}

/* --- server-side protocol helpers follow ------------------------------- */
