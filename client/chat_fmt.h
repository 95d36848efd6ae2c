/*
 * chat_fmt.h - text that chat(1) shows: a growable string buffer, and
 * the rendering of what the server sends (chat messages, times, lists)
 * with every control character from the network made harmless, so a
 * message can not move the cursor, recolour or retitle the terminal.
 */
#ifndef CHATD_CHAT_FMT_H
#define CHATD_CHAT_FMT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * A string that grows as text is added.  Out of memory is sticky: the
 * buffer then reads "(out of memory)", so callers print without checking
 * every append.
 */
struct chat_fmt {
	char	*s;
	size_t	 len, cap;
	int	 oom;
};

void chat_fmt_init(struct chat_fmt *f);
void chat_fmt_free(struct chat_fmt *f);
void chat_fmt_reset(struct chat_fmt *f);
/* Append formatted text as is (for text chat(1) writes itself). */
void chat_fmt_add(struct chat_fmt *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append text from the network: C0 and C1 controls and DEL become '?',
 * a tab a space, and a newline a newline plus indent, so a multi-line
 * message stays readable and visibly one message. */
void chat_fmt_add_clean(struct chat_fmt *f, const char *text);
/* The text so far ("" when empty). */
const char *chat_fmt_str(const struct chat_fmt *f);

/* The time of a forwarded message: its "ts" (server milliseconds) as
 * local "YYYY-MM-DD hh:mm:ss", else its "time" string (cleaned), else
 * nothing.  Appended to f. */
void chat_fmt_add_time(struct chat_fmt *f, const cJSON *msg);

/*
 * A forwarded ONE_CHAT (6) or GROUP_CHAT (10) frame as one line:
 *   2024-05-01 12:00:00 bob [2]: hello
 *   2024-05-01 12:00:01 [group 7 devs] bob [2]: hi all
 * groupname may be NULL when unknown.  0, or -1 when msg is not such a
 * frame (nothing appended).
 */
int chat_fmt_chat(struct chat_fmt *f, const cJSON *msg,
    const char *groupname);

/* Field accessors that tolerate absence: a number as long long (or def),
 * a string (or def). */
long long chat_fmt_num(const cJSON *o, const char *key, long long def);
const char *chat_fmt_strfield(const cJSON *o, const char *key,
    const char *def);

#endif
