/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share: the entry
 * point's prototype and the check that turns a broken invariant into a
 * crash libFuzzer saves as an artifact.
 */
#ifndef CHATD_FUZZ_H
#define CHATD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * abort() rather than a return code: libFuzzer only keeps inputs that
 * crash, and a sanitizer-style stop shows the failed condition and the
 * line in the artifact's log.
 */
#define FUZZ_REQUIRE(e) do {						\
	if (!(e)) {							\
		(void)fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

#endif
