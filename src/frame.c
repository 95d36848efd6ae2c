/*
 * frame.c - the incremental object splitter of frame.h.
 *
 * Each byte is examined once however the stream is chunked: the state
 * (depth, inside a string, after a backslash) survives between calls.
 */
#include "config.h"

#include <string.h>

#include "frame.h"

void
frame_init(struct frame *f)
{
	f->scan = 0;
	f->start = 0;
	f->depth = 0;
	f->in_string = 0;
	f->escape = 0;
}

int
frame_next(struct frame *f, const char *buf, size_t len, size_t max,
    size_t *start, size_t *olen)
{
	/* The state in locals: buf may alias anything, so the compiler
	 * would otherwise reload and store f's fields at every byte. */
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = f->scan, ostart = f->start;
	unsigned depth = f->depth;
	int in_string = f->in_string, escape = f->escape, rc = FRAME_NONE;

	for (; i < len; i++) {
		unsigned char ch = p[i];

		if (depth == 0) {
			if (ch == ' ' || ch == '\t' || ch == '\r' ||
			    ch == '\n' || ch == '\0')
				continue;
			if (ch != '{') {
				rc = FRAME_BAD;
				break;
			}
			depth = 1;
			ostart = i;
			continue;
		}
		if (i - ostart >= max) {
			rc = FRAME_TOO_LARGE;
			break;
		}
		if (in_string) {
			const unsigned char *q, *b;
			size_t end;

			if (escape) {
				escape = 0;
				continue;
			}
			/* Most of a frame is string contents: jump to the
			 * closing quote or the next backslash (memchr is
			 * vectorised), without passing the size limit. */
			end = ostart + max < len ? ostart + max : len;
			q = memchr(p + i, '"', end - i);
			b = memchr(p + i, '\\', (q != NULL ? (size_t)(q - p) :
			    end) - i);
			if (b != NULL) {
				i = (size_t)(b - p);
				escape = 1;
			} else if (q != NULL) {
				i = (size_t)(q - p);
				in_string = 0;
			} else
				i = end - 1;	/* the limit check sees end */
			continue;
		}
		switch (ch) {
		case '"':
			in_string = 1;
			break;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (--depth == 0) {
				*start = ostart;
				*olen = i + 1 - ostart;
				i++;
				rc = FRAME_OK;
				goto out;
			}
			break;
		default:
			break;
		}
	}
out:
	/* An open object longer than max was refused inside the loop, at
	 * its (max + 1)th byte; a bad byte or that one is where scan
	 * stays. */
	f->scan = i;
	f->start = ostart;
	f->depth = depth;
	f->in_string = (unsigned char)in_string;
	f->escape = (unsigned char)escape;
	return rc;
}

size_t
frame_consumable(const struct frame *f)
{
	return f->depth > 0 ? f->start : f->scan;
}

void
frame_shift(struct frame *f, size_t n)
{
	f->scan -= n;
	if (f->depth > 0)
		f->start -= n;
}
