/*
 * bench_hash.c - chat-bench's hash mode: argon2id password hashes at
 * chatd's cost, on threads of this process, with no server involved.
 *
 * It is the control of the login-storm measurement.  Run beside a chat
 * run, it puts on the host the same CPU and memory load as chatd's own
 * login hashing, but in another process: if the chat latency is the same
 * with either, chatd's event loops are not slowed by their own hashing
 * any more than by any other busy process on the host.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "bench.h"

#define HASH_MAX_THREADS	64

struct hash_thread {
	pthread_t tid;
	const struct bench_opts *o;
	int64_t deadline;
	long hashes;
	int failed;
};

static void *
hash_thread(void *arg)
{
	struct hash_thread *t = arg;
	unsigned char out[crypto_pwhash_STRBYTES];
	static const unsigned char salt[crypto_pwhash_SALTBYTES] =
	    "chat-bench-salt";
	static const char pw[] = "bench-Pa55word";

	while (bench_now() < t->deadline) {
		if (crypto_pwhash(out, 32, pw, sizeof(pw) - 1, salt,
		    (unsigned long long)t->o->hash_ops,
		    (size_t)t->o->hash_mem_kib * 1024,
		    crypto_pwhash_ALG_ARGON2ID13) != 0) {
			t->failed = 1;	/* out of memory */
			break;
		}
		t->hashes++;
	}
	return NULL;
}

int
bench_hash(const struct bench_opts *o)
{
	struct hash_thread t[HASH_MAX_THREADS];
	struct bench_usage u;
	pid_t self;
	int64_t start;
	double secs, cpu;
	long hashes = 0;
	int i, n = o->threads, failed = 0;

	if (sodium_init() < 0) {
		(void)fprintf(stderr, "chat-bench: sodium_init failed\n");
		return 1;
	}
	if (n > HASH_MAX_THREADS)
		n = HASH_MAX_THREADS;
	start = bench_now();
	for (i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].o = o;
		t[i].deadline = start + (int64_t)(o->duration * 1e9);
		if (bench_thread(&t[i].tid, hash_thread, &t[i]) == -1) {
			n = i;
			failed = 1;
			break;
		}
	}
	for (i = 0; i < n; i++) {
		(void)pthread_join(t[i].tid, NULL);
		hashes += t[i].hashes;
		failed |= t[i].failed;
	}
	secs = (double)(bench_now() - start) / 1e9;
	self = getpid();
	bench_usage(&self, 1, &u);
	cpu = u.cpu_s;
	if (o->json) {
		cJSON *j = cJSON_CreateObject();
		char *s;

		cJSON_AddStringToObject(j, "mode", "hash");
		cJSON_AddBoolToObject(j, "ok", !failed && hashes > 0);
		cJSON_AddNumberToObject(j, "threads", n);
		cJSON_AddNumberToObject(j, "opslimit", o->hash_ops);
		cJSON_AddNumberToObject(j, "memlimit_kib",
		    (double)o->hash_mem_kib);
		cJSON_AddNumberToObject(j, "duration_s", secs);
		cJSON_AddNumberToObject(j, "hashes", (double)hashes);
		cJSON_AddNumberToObject(j, "hashes_per_s",
		    secs > 0 ? hashes / secs : 0);
		cJSON_AddNumberToObject(j, "cpu_s", cpu);
		if ((s = cJSON_PrintUnformatted(j)) != NULL)
			(void)printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(j);
	} else {
		(void)printf("chat-bench hash: argon2id, opslimit %d, %ld KiB, "
		    "%d thread(s)\n", o->hash_ops, o->hash_mem_kib, n);
		(void)printf("  hash       %ld in %.2f s: %.1f/s%s\n", hashes,
		    secs, secs > 0 ? hashes / secs : 0, failed ?
		    " (FAILED: out of memory)" : "");
		(void)printf("  bench      CPU %.2f s (%.2f cores)\n", cpu,
		    secs > 0 ? cpu / secs : 0);
	}
	return !failed && hashes > 0 ? 0 : 1;
}
