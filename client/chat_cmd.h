/*
 * chat_cmd.h - the command language of chat(1): the classic
 * "name:arg:text" lines typed after login, parsed into a struct, and the
 * table the help text is printed from.  Pure string work, no I/O, so the
 * parser is unit-tested on its own.
 */
#ifndef CHATD_CHAT_CMD_H
#define CHATD_CHAT_CMD_H

#include <stddef.h>

enum chat_cmd_kind {
	CHAT_CMD_EMPTY = 0,	/* a blank line: nothing to do */
	CHAT_CMD_CHAT,		/* chat:friendid:message */
	CHAT_CMD_ADDFRIEND,	/* addfriend:id */
	CHAT_CMD_DELFRIEND,	/* delfriend:id */
	CHAT_CMD_CREATEGROUP,	/* creategroup:name:desc */
	CHAT_CMD_ADDGROUP,	/* addgroup:groupid */
	CHAT_CMD_QUITGROUP,	/* quitgroup:groupid */
	CHAT_CMD_GROUPCHAT,	/* groupchat:groupid:message */
	CHAT_CMD_FRIENDS,	/* friends */
	CHAT_CMD_GROUPS,	/* groups */
	CHAT_CMD_MEMBERS,	/* members:groupid */
	CHAT_CMD_LOGINOUT,	/* loginout */
	CHAT_CMD_RECONNECT,	/* reconnect */
	CHAT_CMD_HELP,		/* help */
	CHAT_CMD_QUIT,		/* quit */
};

struct chat_cmd {
	enum chat_cmd_kind kind;
	long long id;		/* friend, user or group id, when the command
				 * takes one */
	const char *text;	/* message, or group name; points into the
				 * parsed line */
	const char *text2;	/* group description ("" when left out) */
};

/* Ids are positive and fit the server's range (chat-protocol(7)). */
#define CHAT_CMD_ID_MAX	4294967294LL

/*
 * Parse one command line, in place: separators in line are overwritten,
 * and cmd's strings point into it.  Leading and trailing blanks around
 * the command name and ids are ignored; a message or description is
 * taken verbatim up to the end of the line, colons included.
 * Returns 0, or -1 with a one-line reason (naming the expected syntax)
 * in err.
 */
int chat_cmd_parse(char *line, struct chat_cmd *cmd, char *err,
    size_t errlen);

/* Parse an id ("  42 "): 0 and *id set, or -1 when it is not a number in
 * 1..CHAT_CMD_ID_MAX. */
int chat_cmd_parse_id(const char *s, long long *id);

/* Row i of the help text, in order: 0 with *usage
 * ("chat:friendid:message") and *what (what it does) set, or -1 past
 * the last row. */
int chat_cmd_help(size_t i, const char **usage, const char **what);

#endif
