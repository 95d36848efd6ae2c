/*
 * fuzz_frame.c - libFuzzer target for the client stream splitter
 * (src/frame.c).
 *
 * The input is a 4-byte header and a byte stream.  The header picks
 * max_frame (1..2048, small so FRAME_TOO_LARGE is easy to reach) and a
 * seed for the chunking.  The stream is split twice:
 *
 *   - in one pass over the whole buffer, which gives the reference list
 *     of frames and the final status;
 *   - the way conn.c feeds it: chunks of sizes drawn from the seed are
 *     appended to a buffer, frame_next() runs until FRAME_NONE or an
 *     error (sometimes stopping early after a frame, as a paused
 *     connection does), then frame_consumable() bytes are discarded from
 *     the front and frame_shift() told so.
 *
 * Both must give the same frames and the same status, whatever the
 * chunking.  Every frame starts with '{', ends with '}' or ']', is at
 * most max_frame bytes and splits alone into exactly itself; only
 * whitespace and NUL separate frames; the bytes kept between reads never
 * exceed max_frame, so a connection's input buffer stays bounded.
 *
 * The buffers are allocated to their exact length so that AddressSanitizer
 * reports any read past what the splitter was given.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"

#define HEADER_LEN	4
#define DEFAULT_MAX	64
#define MAX_MAX		2048

struct span {
	size_t off, len;	/* a frame's bytes in the whole stream */
};

struct split {
	struct span *frames;
	size_t nframes;
	int status;		/* FRAME_NONE, FRAME_TOO_LARGE or FRAME_BAD */
};

/* xorshift32: cheap, and the same input always chunks the same way. */
static uint32_t
rng_next(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

static int
is_gap(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
	    ch == '\0';
}

/* The checks every frame must pass, wherever it came from. */
static void
check_frame(const char *p, size_t len, size_t max)
{
	struct frame f;
	size_t start, olen;

	FUZZ_REQUIRE(len >= 2);
	FUZZ_REQUIRE(len <= max);
	FUZZ_REQUIRE(p[0] == '{');
	FUZZ_REQUIRE(p[len - 1] == '}' || p[len - 1] == ']');

	/* A frame on its own is one frame, all of it, and nothing more. */
	frame_init(&f);
	FUZZ_REQUIRE(frame_next(&f, p, len, max, &start, &olen) == FRAME_OK);
	FUZZ_REQUIRE(start == 0 && olen == len);
	FUZZ_REQUIRE(frame_next(&f, p, len, max, &start, &olen) == FRAME_NONE);
	FUZZ_REQUIRE(frame_consumable(&f) == len);
}

/* The reference: the whole stream in one buffer, in one pass. */
static void
split_whole(const char *buf, size_t len, size_t max, struct split *out)
{
	struct frame f;
	size_t start, olen, end = 0, i;
	int rc;

	frame_init(&f);
	out->nframes = 0;
	/* A frame is at least two bytes, so len / 2 + 1 is always enough. */
	out->frames = malloc((len / 2 + 1) * sizeof(*out->frames));
	FUZZ_REQUIRE(out->frames != NULL);
	while ((rc = frame_next(&f, buf, len, max, &start, &olen)) ==
	    FRAME_OK) {
		FUZZ_REQUIRE(start >= end && start + olen <= len);
		for (i = end; i < start; i++)
			FUZZ_REQUIRE(is_gap((unsigned char)buf[i]));
		check_frame(buf + start, olen, max);
		out->frames[out->nframes].off = start;
		out->frames[out->nframes].len = olen;
		out->nframes++;
		end = start + olen;
	}
	FUZZ_REQUIRE(rc == FRAME_NONE || rc == FRAME_TOO_LARGE ||
	    rc == FRAME_BAD);
	out->status = rc;
	if (rc == FRAME_NONE) {
		FUZZ_REQUIRE(frame_consumable(&f) >= end);
		FUZZ_REQUIRE(frame_consumable(&f) <= len);
		FUZZ_REQUIRE(len - frame_consumable(&f) <= max);
		/* What can be dropped is frames and gaps only. */
		for (i = end; i < frame_consumable(&f); i++)
			FUZZ_REQUIRE(is_gap((unsigned char)buf[i]));
	}
}

/*
 * Feed stream[0..len) as conn.c does, in chunks drawn from seed, and
 * compare each frame with the reference as it comes out.
 */
static void
split_chunked(const char *stream, size_t len, size_t max, uint32_t seed,
    const struct split *ref)
{
	struct frame f;
	char *buf = NULL, *nbuf;
	size_t blen = 0, fed = 0, n = 0, start, olen, used, chunk, limit;
	uint32_t s = seed != 0 ? seed : 0x9e3779b9u;
	int rc = FRAME_NONE, paused = 0;

	/* Byte by byte, short, medium or any chunk sizes. */
	switch (seed & 3) {
	case 0:
		limit = 1;
		break;
	case 1:
		limit = 16;
		break;
	case 2:
		limit = 512;
		break;
	default:
		limit = len + 1;
		break;
	}
	frame_init(&f);
	for (;;) {
		if (!paused) {
			if (fed == len)
				break;
			chunk = 1 + rng_next(&s) % limit;
			if (chunk > len - fed)
				chunk = len - fed;
			/* Exactly blen + chunk bytes: overreads are ASan
			 * reports. */
			nbuf = malloc(blen + chunk);
			FUZZ_REQUIRE(nbuf != NULL);
			if (blen > 0)
				memcpy(nbuf, buf, blen);
			memcpy(nbuf + blen, stream + fed, chunk);
			free(buf);
			buf = nbuf;
			blen += chunk;
			fed += chunk;
		}
		paused = 0;
		while ((rc = frame_next(&f, buf, blen, max, &start, &olen)) ==
		    FRAME_OK) {
			FUZZ_REQUIRE(start + olen <= blen);
			check_frame(buf + start, olen, max);
			FUZZ_REQUIRE(n < ref->nframes);
			FUZZ_REQUIRE(olen == ref->frames[n].len);
			FUZZ_REQUIRE(memcmp(buf + start,
			    stream + ref->frames[n].off, olen) == 0);
			n++;
			/* A paused connection stops after a frame and
			 * resumes later on the same bytes, after the shift
			 * below, before reading more. */
			if (rng_next(&s) % 4 == 0) {
				paused = 1;
				break;
			}
		}
		if (!paused && rc != FRAME_NONE)
			break;	/* conn.c closes the connection */
		used = frame_consumable(&f);
		FUZZ_REQUIRE(used <= blen);
		if (used > 0) {
			memmove(buf, buf + used, blen - used);
			blen -= used;
			frame_shift(&f, used);
		}
		/* Between reads no more than max_frame bytes are kept. */
		if (!paused)
			FUZZ_REQUIRE(blen <= max);
	}
	FUZZ_REQUIRE(rc == ref->status);
	FUZZ_REQUIRE(n == ref->nframes);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *stream = (const char *)data;
	size_t len = size, max = DEFAULT_MAX;
	uint32_t seed = 0;
	struct split ref;

	if (size >= HEADER_LEN) {
		max = 1 + (((size_t)data[0] | (size_t)data[1] << 8) % MAX_MAX);
		seed = (uint32_t)data[2] | (uint32_t)data[3] << 8;
		stream += HEADER_LEN;
		len -= HEADER_LEN;
	}
	split_whole(stream, len, max, &ref);
	split_chunked(stream, len, max, seed, &ref);
	free(ref.frames);
	return 0;
}
