/*
 * jsonw.c - the direct JSON writer of jsonw.h.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jsonw.h"

void
jbuf_init(struct jbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void
jbuf_free(struct jbuf *b)
{
	free(b->p);
	jbuf_init(b);
}

void
jbuf_trim(struct jbuf *b, size_t keep)
{
	if (b->cap > keep)
		jbuf_free(b);
}

/* Room for n more bytes; 0, or -1 (and oom set) when out of memory. */
static int
jbuf_reserve(struct jbuf *b, size_t n)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return -1;
	if (b->len + n <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap *= 2;
	if ((np = realloc(b->p, ncap)) == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

void
jbuf_raw(struct jbuf *b, const char *s, size_t n)
{
	if (jbuf_reserve(b, n) == -1)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* 0x80 in each byte of v that is zero (exact as a whole-word test). */
#define JSONW_ONES	0x0101010101010101ULL
#define JSONW_HIGHS	0x8080808080808080ULL
#define JSONW_ZERO(v)	(((v) - JSONW_ONES) & ~(v) & JSONW_HIGHS)

size_t
json_plain_span(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, u + i, sizeof(w));
		/* A byte below 0x20, a '"' or a '\\' somewhere in w. */
		if (((w - 0x20 * JSONW_ONES) & ~w & JSONW_HIGHS) |
		    JSONW_ZERO(w ^ ('"' * JSONW_ONES)) |
		    JSONW_ZERO(w ^ ('\\' * JSONW_ONES)))
			break;
	}
	for (; i < n; i++)
		if (u[i] < 32 || u[i] == '"' || u[i] == '\\')
			break;
	return i;
}

/* What follows the backslash in the escape of ch (ch needs one) into
 * tail; its length. */
static size_t
json_escape_tail(unsigned char ch, char tail[5])
{
	static const char hex[] = "0123456789abcdef";

	switch (ch) {
	case '"': tail[0] = '"'; return 1;
	case '\\': tail[0] = '\\'; return 1;
	case '\b': tail[0] = 'b'; return 1;
	case '\f': tail[0] = 'f'; return 1;
	case '\n': tail[0] = 'n'; return 1;
	case '\r': tail[0] = 'r'; return 1;
	case '\t': tail[0] = 't'; return 1;
	default:
		tail[0] = 'u';
		tail[1] = tail[2] = '0';
		tail[3] = hex[ch >> 4];
		tail[4] = hex[ch & 15];
		return 5;
	}
}

void
jbuf_str(struct jbuf *b, const char *s)
{
	jbuf_strn(b, s, strlen(s));
}

void
jbuf_strn(struct jbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, k, run, more;
	int grown = 0;
	char *o, tail[5];

	/* Most strings need no escape: one pass.  At the first escape,
	 * the rest is measured and reserved exactly (reserving 6 bytes per
	 * byte would keep a scratch buffer of 6 times the longest
	 * message). */
	if (jbuf_reserve(b, n + 2) == -1)
		return;
	o = b->p + b->len;
	*o++ = '"';
	for (i = 0;; i++) {
		run = json_plain_span(s + i, n - i);
		memcpy(o, s + i, run);
		o += run;
		if ((i += run) == n)
			break;
		if (!grown) {
			for (more = 1, k = i; k < n;
			    k += 1 + json_plain_span(s + k + 1, n - k - 1))
				more += json_escape_tail(u[k], tail);
			b->len = (size_t)(o - b->p);
			if (jbuf_reserve(b, n - i + more) == -1)
				return;
			o = b->p + b->len;
			grown = 1;
		}
		*o++ = '\\';
		o += json_escape_tail(u[i], o);
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

/* k backslashes. */
static void
jbuf_backslashes(struct jbuf *b, unsigned k)
{
	static const char bs[] = "\\\\\\\\\\\\\\\\";

	for (; k > sizeof(bs) - 1; k -= sizeof(bs) - 1)
		jbuf_raw(b, bs, sizeof(bs) - 1);
	if (k > 0)
		jbuf_raw(b, bs, k);
}

void
jbuf_raw_deep(struct jbuf *b, const char *s, size_t n, unsigned depth)
{
	size_t i = 0, run;

	while (i < n) {
		for (run = 0; i + run < n && s[i + run] != '"' &&
		    s[i + run] != '\\'; run++)
			;
		if (run > 0)
			jbuf_raw(b, s + i, run);
		if ((i += run) == n)
			break;
		/* Each level escapes the backslashes of the one inside. */
		jbuf_backslashes(b, (1u << depth) - 1);
		jbuf_raw(b, s + i++, 1);
	}
}

void
jbuf_str_deep(struct jbuf *b, const char *s, size_t n, unsigned depth)
{
	size_t i, run;
	char tail[5];

	if (depth == 0) {
		jbuf_strn(b, s, n);
		return;
	}
	jbuf_backslashes(b, (1u << depth) - 1);	/* the quote, that deep */
	jbuf_lit(b, "\"");
	for (i = 0; i < n; i += run) {
		if ((run = json_plain_span(s + i, n - i)) > 0) {
			jbuf_raw(b, s + i, run);
			continue;
		}
		/* The escape's backslash, escaped at each level; its tail
		 * ('"' or '\\' is escaped again) as any text that deep. */
		jbuf_backslashes(b, 1u << depth);
		jbuf_raw_deep(b, tail, json_escape_tail((unsigned char)s[i],
		    tail), depth);
		run = 1;
	}
	jbuf_backslashes(b, (1u << depth) - 1);
	jbuf_lit(b, "\"");
}

void
jbuf_u64(struct jbuf *b, uint64_t v)
{
	char tmp[20], *t = tmp + sizeof(tmp);

	do {
		*--t = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	jbuf_raw(b, t, (size_t)(tmp + sizeof(tmp) - t));
}

void
jbuf_json(struct jbuf *b, const cJSON *item)
{
	char *s;

	if (cJSON_IsString(item) && item->valuestring != NULL) {
		jbuf_str(b, item->valuestring);
		return;
	}
	/* cJSON prints numbers with "%1.15g": an int's digits, and "-0"
	 * for minus zero. */
	if (cJSON_IsNumber(item) && item->valuedouble ==
	    (double)item->valueint &&
	    !(item->valueint == 0 && signbit(item->valuedouble))) {
		if (item->valueint < 0)
			jbuf_lit(b, "-");
		jbuf_u64(b, item->valueint < 0 ?
		    (uint64_t)-(int64_t)item->valueint :
		    (uint64_t)item->valueint);
		return;
	}
	if ((s = cJSON_PrintUnformatted(item)) == NULL) {
		b->oom = 1;
		return;
	}
	jbuf_raw(b, s, strlen(s));
	cJSON_free(s);
}
