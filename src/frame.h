/*
 * frame.h - splits the client's byte stream into JSON objects.
 *
 * Client framing (chat-protocol(7)): a stream of JSON objects; whitespace
 * and NUL bytes between objects are ignored, so the classic client's
 * NUL-terminated objects, newline-delimited objects and back-to-back
 * objects all work.  The splitter only balances braces outside strings;
 * whether the object is valid JSON is the parser's business.
 */
#ifndef CHATD_FRAME_H
#define CHATD_FRAME_H

#include <stddef.h>

struct frame {
	size_t scan;		/* bytes of the buffer already examined */
	size_t start;		/* offset of the open object (depth > 0) */
	unsigned depth;		/* nesting of the open object, 0 = between */
	unsigned char in_string, escape;
};

enum {
	FRAME_NONE = 0,		/* need more bytes */
	FRAME_OK = 1,		/* a whole object is at [*start, +*len) */
	FRAME_TOO_LARGE = -1,	/* open object longer than max */
	FRAME_BAD = -2,		/* a byte outside an object that is not
				 * whitespace or NUL */
};

void frame_init(struct frame *f);
/*
 * Scan buf[0..len) from where the last call stopped.  Returns FRAME_OK
 * with the next object's bounds, FRAME_NONE, or an error; after an error
 * the stream cannot be resynchronised and the connection must close.
 */
int frame_next(struct frame *f, const char *buf, size_t len, size_t max,
    size_t *start, size_t *olen);
/* Bytes at the front of the buffer the caller may discard now. */
size_t frame_consumable(const struct frame *f);
/* The caller removed n bytes from the front of the buffer. */
void frame_shift(struct frame *f, size_t n);

#endif
