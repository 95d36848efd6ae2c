/*
 * fuzz_conf.c - libFuzzer target for the configuration loader
 * (src/conf.c over libinih).
 *
 * The input is a whole chatd.conf.  It is written to a memfd and loaded
 * through /proc/self/fd/N, so conf_load() reads a real file with stdio
 * and nothing touches the disk.  conf_load() must never crash and must:
 *
 *   - return 0 or -1;
 *   - on -1 give a non-empty, terminated message; when the message names
 *     the file it reads "path:N: reason" with N a line of the input, so an
 *     operator can find the line (conf_finish's whole-file errors name
 *     the key instead);
 *   - on 0 leave a configuration that holds conf_finish's cross-checks,
 *     every string terminated inside its buffer;
 *   - give the same result, byte for byte, when loaded again.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

#define ERRLEN	512

/* Returns the number of lines a reader can be on: newlines + 1. */
static size_t
count_lines(const uint8_t *data, size_t size)
{
	size_t i, n = 1;

	for (i = 0; i < size; i++)
		if (data[i] == '\n')
			n++;
	return n;
}

static void
check_error(const char *err, const char *path, size_t lines)
{
	size_t plen = strlen(path);
	const char *p;
	unsigned long line;
	char *end;

	FUZZ_REQUIRE(memchr(err, '\0', ERRLEN) != NULL);
	FUZZ_REQUIRE(err[0] != '\0');
	if (strncmp(err, path, plen) != 0)
		return;		/* conf_finish: "key: reason" */
	p = err + plen;
	FUZZ_REQUIRE(p[0] == ':');
	FUZZ_REQUIRE(isdigit((unsigned char)p[1]));
	line = strtoul(p + 1, &end, 10);
	FUZZ_REQUIRE(line >= 1 && line <= lines);
	FUZZ_REQUIRE(end[0] == ':' && end[1] == ' ' && end[2] != '\0');
}

static void
check_loaded(const struct conf *c)
{
	FUZZ_REQUIRE(memchr(c->listen, '\0', sizeof(c->listen)) != NULL);
	FUZZ_REQUIRE(memchr(c->node_id, '\0', sizeof(c->node_id)) != NULL);
	FUZZ_REQUIRE(memchr(c->log_level, '\0', sizeof(c->log_level)) != NULL);
	FUZZ_REQUIRE(memchr(c->presence_shm, '\0',
	    sizeof(c->presence_shm)) != NULL);
	FUZZ_REQUIRE(memchr(c->db_password, '\0',
	    sizeof(c->db_password)) != NULL);
	FUZZ_REQUIRE(strchr(c->listen, ':') != NULL);
	FUZZ_REQUIRE(c->node_id[0] != '\0');
	FUZZ_REQUIRE(c->presence_shm[0] == '/');
	FUZZ_REQUIRE(c->workers >= 1 && c->workers <= 64);
	FUZZ_REQUIRE(c->max_frame >= 1024);
	FUZZ_REQUIRE(c->max_message >= 1);
	FUZZ_REQUIRE(c->max_message <= c->max_frame - 256);
	FUZZ_REQUIRE(c->max_output >= c->max_frame);
}

/* Defaults, then the file; returns conf_load's result. */
static int
load(const char *path, struct conf *c, char *err)
{
	memset(err, 0, ERRLEN);
	conf_defaults(c);
	return conf_load(c, path, err, ERRLEN);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c1, c2;	/* large: keep them off the stack */
	char path[64], err1[ERRLEN], err2[ERRLEN];
	size_t off = 0;
	ssize_t n;
	int fd, rc1, rc2;

	fd = memfd_create("chatd.conf", MFD_CLOEXEC);
	FUZZ_REQUIRE(fd >= 0);
	while (off < size) {
		n = write(fd, data + off, size - off);
		FUZZ_REQUIRE(n > 0);
		off += (size_t)n;
	}
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	rc1 = load(path, &c1, err1);
	FUZZ_REQUIRE(rc1 == 0 || rc1 == -1);
	if (rc1 == -1)
		check_error(err1, path, count_lines(data, size));
	else
		check_loaded(&c1);

	rc2 = load(path, &c2, err2);
	FUZZ_REQUIRE(rc2 == rc1);
	FUZZ_REQUIRE(strcmp(err1, err2) == 0);
	if (rc1 == 0)
		FUZZ_REQUIRE(memcmp(&c1, &c2, sizeof(c1)) == 0);

	(void)close(fd);
	return 0;
}
