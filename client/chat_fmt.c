/*
 * chat_fmt.c - rendering of server data for chat(1)'s terminal.
 *
 * Everything a peer typed (messages, names, group descriptions, the
 * client-chosen "time") reaches the terminal only through
 * chat_fmt_add_clean(), which keeps UTF-8 text but not the bytes a
 * terminal would act on: a message must not be able to clear the screen
 * or fake a line from someone else.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_fmt.h"
#include "protocol.h"

#define CHAT_FMT_MINCAP	256	/* first allocation of a buffer */
#define CHAT_FMT_INDENT	"    "	/* continuation lines of a message */

void
chat_fmt_init(struct chat_fmt *f)
{
	memset(f, 0, sizeof(*f));
}

void
chat_fmt_free(struct chat_fmt *f)
{
	free(f->s);
	chat_fmt_init(f);
}

void
chat_fmt_reset(struct chat_fmt *f)
{
	f->len = 0;
	f->oom = 0;
	if (f->s != NULL)
		f->s[0] = '\0';
}

const char *
chat_fmt_str(const struct chat_fmt *f)
{
	if (f->oom)
		return "(out of memory)";
	return f->s != NULL ? f->s : "";
}

/* Room for n more bytes and a NUL; 0, or -1 (and oom set). */
static int
chat_fmt_reserve(struct chat_fmt *f, size_t n)
{
	size_t ncap;
	char *ns;

	if (f->oom)
		return -1;
	if (f->cap > 0 && f->cap - f->len > n)
		return 0;
	ncap = f->cap < CHAT_FMT_MINCAP ? CHAT_FMT_MINCAP : f->cap;
	while (ncap - f->len <= n) {
		if (ncap > ((size_t)-1) / 2) {
			f->oom = 1;
			return -1;
		}
		ncap *= 2;
	}
	if ((ns = realloc(f->s, ncap)) == NULL) {
		f->oom = 1;
		return -1;
	}
	f->s = ns;
	f->cap = ncap;
	return 0;
}

static void
chat_fmt_addn(struct chat_fmt *f, const char *p, size_t n)
{
	if (chat_fmt_reserve(f, n) == -1)
		return;
	memcpy(f->s + f->len, p, n);
	f->len += n;
	f->s[f->len] = '\0';
}

void
chat_fmt_add(struct chat_fmt *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		f->oom = 1;
		return;
	}
	if (chat_fmt_reserve(f, (size_t)n) == -1)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(f->s + f->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	f->len += (size_t)n;
}

void
chat_fmt_add_clean(struct chat_fmt *f, const char *text)
{
	const unsigned char *p = (const unsigned char *)text, *run;

	if (text == NULL)
		return;
	while (*p != '\0') {
		/* Copy the longest run of harmless bytes in one go. */
		for (run = p; *p != '\0'; p++) {
			if (*p < 0x20 || *p == 0x7f)
				break;
			/* C1 controls, U+0080..U+009F, are C2 80..C2 9F. */
			if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
				break;
		}
		chat_fmt_addn(f, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		if (*p == '\n')
			chat_fmt_add(f, "\n%s", CHAT_FMT_INDENT);
		else if (*p == '\t')
			chat_fmt_addn(f, " ", 1);
		else
			chat_fmt_addn(f, "?", 1);
		p += *p == 0xc2 ? 2 : 1;
	}
}

void
chat_fmt_add_time(struct chat_fmt *f, const cJSON *msg)
{
	const cJSON *ts, *tm;
	char buf[64];
	struct tm lt;
	time_t t;

	ts = cJSON_GetObjectItemCaseSensitive(msg, "ts");
	if (cJSON_IsNumber(ts) && ts->valuedouble > 0 &&
	    ts->valuedouble < 1e15) {
		t = (time_t)(ts->valuedouble / 1000);
		if (localtime_r(&t, &lt) != NULL &&
		    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &lt) > 0) {
			chat_fmt_add(f, "%s", buf);
			return;
		}
	}
	tm = cJSON_GetObjectItemCaseSensitive(msg, "time");
	if (cJSON_IsString(tm))
		chat_fmt_add_clean(f, tm->valuestring);
}

long long
chat_fmt_num(const cJSON *o, const char *key, long long def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : def;
}

const char *
chat_fmt_strfield(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : def;
}

int
chat_fmt_chat(struct chat_fmt *f, const cJSON *msg, const char *groupname)
{
	long long msgid, from;
	size_t len0 = f->len;

	msgid = chat_fmt_num(msg, "msgid", -1);
	from = chat_fmt_num(msg, "id", -1);
	if ((msgid != MSG_ONE_CHAT && msgid != MSG_GROUP_CHAT) || from < 0 ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(msg, "msg")))
		return -1;
	chat_fmt_add_time(f, msg);
	if (f->len > len0)
		chat_fmt_add(f, " ");
	if (msgid == MSG_GROUP_CHAT) {
		chat_fmt_add(f, "[group %lld",
		    chat_fmt_num(msg, "groupid", -1));
		if (groupname != NULL) {
			chat_fmt_add(f, " ");
			chat_fmt_add_clean(f, groupname);
		}
		chat_fmt_add(f, "] ");
	}
	chat_fmt_add_clean(f, chat_fmt_strfield(msg, "name", "?"));
	chat_fmt_add(f, " [%lld]: ", from);
	chat_fmt_add_clean(f, chat_fmt_strfield(msg, "msg", ""));
	return 0;
}
