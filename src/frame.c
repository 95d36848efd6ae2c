/*
 * frame.c - the incremental object splitter of frame.h.
 *
 * Each byte is examined once however the stream is chunked: the state
 * (depth, inside a string, after a backslash) survives between calls.
 */
#include "config.h"

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
	size_t i;

	for (i = f->scan; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (f->depth == 0) {
			if (ch == ' ' || ch == '\t' || ch == '\r' ||
			    ch == '\n' || ch == '\0')
				continue;
			if (ch != '{') {
				f->scan = i;
				return FRAME_BAD;
			}
			f->depth = 1;
			f->start = i;
			continue;
		}
		if (i - f->start >= max) {
			f->scan = i;
			return FRAME_TOO_LARGE;
		}
		if (f->in_string) {
			if (f->escape)
				f->escape = 0;
			else if (ch == '\\')
				f->escape = 1;
			else if (ch == '"')
				f->in_string = 0;
			continue;
		}
		switch (ch) {
		case '"':
			f->in_string = 1;
			break;
		case '{':
		case '[':
			f->depth++;
			break;
		case '}':
		case ']':
			if (--f->depth == 0) {
				*start = f->start;
				*olen = i + 1 - f->start;
				f->scan = i + 1;
				return FRAME_OK;
			}
			break;
		default:
			break;
		}
	}
	/* An open object longer than max was refused inside the loop, at
	 * its (max + 1)th byte. */
	f->scan = len;
	return FRAME_NONE;
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
