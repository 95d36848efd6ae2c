/*
 * chat_cmd.c - parser of chat(1)'s command lines and its help table.
 *
 * The syntax is the classic client's, "command:arg:text", kept so that
 * people (and scripts) used to it need not relearn anything; the
 * extensions follow the same shape.  One table names every command, its
 * argument shape and its help line, so the parser and the help text can
 * not disagree.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_cmd.h"

/* What follows the command name. */
enum chat_cmd_args {
	ARGS_NONE,		/* "friends" */
	ARGS_ID,		/* "addfriend:id" */
	ARGS_ID_TEXT,		/* "chat:id:message" */
	ARGS_TEXT_TEXT,		/* "creategroup:name:desc" */
};

struct chat_cmd_def {
	const char *name;
	enum chat_cmd_kind kind;
	enum chat_cmd_args args;
	const char *usage;
	const char *what;
};

static const struct chat_cmd_def chat_cmd_defs[] = {
	{ "chat", CHAT_CMD_CHAT, ARGS_ID_TEXT, "chat:friendid:message",
	    "send a message to a user" },
	{ "groupchat", CHAT_CMD_GROUPCHAT, ARGS_ID_TEXT,
	    "groupchat:groupid:message", "send a message to a group" },
	{ "addfriend", CHAT_CMD_ADDFRIEND, ARGS_ID, "addfriend:id",
	    "become friends with a user" },
	{ "delfriend", CHAT_CMD_DELFRIEND, ARGS_ID, "delfriend:id",
	    "end a friendship" },
	{ "friends", CHAT_CMD_FRIENDS, ARGS_NONE, "friends",
	    "list your friends and who is online" },
	{ "creategroup", CHAT_CMD_CREATEGROUP, ARGS_TEXT_TEXT,
	    "creategroup:name:desc",
	    "create a group (you become its creator)" },
	{ "addgroup", CHAT_CMD_ADDGROUP, ARGS_ID, "addgroup:groupid",
	    "join a group" },
	{ "quitgroup", CHAT_CMD_QUITGROUP, ARGS_ID, "quitgroup:groupid",
	    "leave a group" },
	{ "groups", CHAT_CMD_GROUPS, ARGS_NONE, "groups",
	    "list your groups and your role in each" },
	{ "members", CHAT_CMD_MEMBERS, ARGS_ID, "members:groupid",
	    "list a group's members, roles and who is online" },
	{ "loginout", CHAT_CMD_LOGINOUT, ARGS_NONE, "loginout",
	    "log out and go back to the menu" },
	{ "reconnect", CHAT_CMD_RECONNECT, ARGS_NONE, "reconnect",
	    "after a lost connection: connect and log in again" },
	{ "help", CHAT_CMD_HELP, ARGS_NONE, "help", "show this list" },
	{ "quit", CHAT_CMD_QUIT, ARGS_NONE, "quit",
	    "log out and leave chat" },
};
#define NDEFS	(sizeof(chat_cmd_defs) / sizeof(chat_cmd_defs[0]))

int
chat_cmd_help(size_t i, const char **usage, const char **what)
{
	if (i >= NDEFS)
		return -1;
	*usage = chat_cmd_defs[i].usage;
	*what = chat_cmd_defs[i].what;
	return 0;
}

static int
chat_cmd_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* s without leading and trailing blanks, in place. */
static char *
chat_cmd_trim(char *s)
{
	char *end;

	while (chat_cmd_blank(*s))
		s++;
	end = s + strlen(s);
	while (end > s && chat_cmd_blank(end[-1]))
		*--end = '\0';
	return s;
}

int
chat_cmd_parse_id(const char *s, long long *id)
{
	char *end;
	long long v;

	while (chat_cmd_blank(*s))
		s++;
	/* strtoll would accept a sign and stop at junk: check both. */
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	while (chat_cmd_blank(*end))
		end++;
	if (errno != 0 || *end != '\0' || v < 1 || v > CHAT_CMD_ID_MAX)
		return -1;
	*id = v;
	return 0;
}

static int
chat_cmd_usage(const struct chat_cmd_def *d, const char *why, char *err,
    size_t errlen)
{
	(void)snprintf(err, errlen, "%s; usage: %s", why, d->usage);
	return -1;
}

int
chat_cmd_parse(char *line, struct chat_cmd *cmd, char *err, size_t errlen)
{
	const struct chat_cmd_def *d = NULL;
	char *name, *rest, *colon, *arg;
	size_t i;

	memset(cmd, 0, sizeof(*cmd));
	cmd->text = cmd->text2 = "";
	/* A message keeps its own blanks; only the line end goes. */
	i = strlen(line);
	while (i > 0 && (line[i - 1] == '\n' || line[i - 1] == '\r'))
		line[--i] = '\0';

	if ((colon = strchr(line, ':')) != NULL) {
		*colon = '\0';
		rest = colon + 1;
	} else
		rest = NULL;
	name = chat_cmd_trim(line);
	if (*name == '\0' && rest == NULL) {
		cmd->kind = CHAT_CMD_EMPTY;
		return 0;
	}
	for (i = 0; i < NDEFS; i++)
		if (strcmp(name, chat_cmd_defs[i].name) == 0) {
			d = &chat_cmd_defs[i];
			break;
		}
	if (d == NULL) {
		(void)snprintf(err, errlen, "unknown command \"%.40s\"; type "
		    "help for the list", name);
		return -1;
	}
	cmd->kind = d->kind;

	switch (d->args) {
	case ARGS_NONE:
		if (rest != NULL && *chat_cmd_trim(rest) != '\0')
			return chat_cmd_usage(d, "no argument expected", err,
			    errlen);
		return 0;
	case ARGS_ID:
		if (rest == NULL)
			return chat_cmd_usage(d, "missing id", err, errlen);
		if (chat_cmd_parse_id(rest, &cmd->id) == -1)
			return chat_cmd_usage(d, "the id must be a positive "
			    "number", err, errlen);
		return 0;
	case ARGS_ID_TEXT:
		if (rest == NULL || (colon = strchr(rest, ':')) == NULL)
			return chat_cmd_usage(d, "missing id or message", err,
			    errlen);
		*colon = '\0';
		if (chat_cmd_parse_id(rest, &cmd->id) == -1)
			return chat_cmd_usage(d, "the id must be a positive "
			    "number", err, errlen);
		cmd->text = colon + 1;
		if (*cmd->text == '\0')
			return chat_cmd_usage(d, "empty message", err, errlen);
		return 0;
	case ARGS_TEXT_TEXT:
		if (rest == NULL)
			return chat_cmd_usage(d, "missing group name", err,
			    errlen);
		if ((colon = strchr(rest, ':')) != NULL) {
			*colon = '\0';
			cmd->text2 = colon + 1;
		}
		arg = chat_cmd_trim(rest);
		if (*arg == '\0')
			return chat_cmd_usage(d, "empty group name", err,
			    errlen);
		cmd->text = arg;
		return 0;
	}
	(void)snprintf(err, errlen, "internal error: bad command table");
	return -1;
}
