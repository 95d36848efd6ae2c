/*
 * jsonw.c - the direct JSON writer of jsonw.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

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

void
jbuf_str(struct jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), out = n + 2, i;
	char *o;

	/* The exact size first: reserving 6 bytes per byte would keep a
	 * scratch buffer of 6 times the longest message. */
	for (i = 0; i < n; i++)
		if (u[i] < 32 || u[i] == '"' || u[i] == '\\')
			out += u[i] < 32 && u[i] != '\b' && u[i] != '\f' &&
			    u[i] != '\n' && u[i] != '\r' && u[i] != '\t' ? 5 : 1;
	if (jbuf_reserve(b, out) == -1)
		return;
	o = b->p + b->len;
	*o++ = '"';
	for (i = 0; i < n; i++) {
		unsigned char ch = u[i];

		if (ch >= 32 && ch != '"' && ch != '\\') {
			*o++ = (char)ch;
			continue;
		}
		*o++ = '\\';
		switch (ch) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
			break;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
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
