/*
 * loginack.h - the lists of a LOGIN_ACK (friends, groups with their
 * members) as plain arrays, and the line written from them directly.
 * FRIEND_LIST and GROUP_MEMBERS read their users into the same arrays
 * (ack_users_json gives their reply's array).
 *
 * The classic LOGIN_ACK carries every friend and every member of every
 * group of the user as a JSON object printed into a JSON string, and
 * each group, members included, printed into a string once more.  Built
 * as cJSON trees and printed twice, the login of a member of a group of
 * 500 and one of 50 took 12.5 million instructions in all (2.55 million
 * since; BENCHMARKS.md, change 14).  The writer here gives the same
 * bytes as that construction, writing each part directly as it reads
 * that deep (jbuf_str_deep); tests/check_proto.c holds the two side by
 * side.
 */
#ifndef CHATD_LOGINACK_H
#define CHATD_LOGINACK_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"
#include "protocol.h"

struct cJSON;

/* A friend (role empty) or a group member. */
struct ack_user {
	uint32_t id;
	unsigned char online;		/* the state the line will say */
	char role[16];			/* "creator", "normal"; "" for friends */
	char name[PROTO_NAME_MAX + 1];
};

struct ack_users {
	struct ack_user *v;
	size_t n, cap;
};

struct ack_group {
	uint32_t id;
	char *name, *desc;
	struct ack_users users;
};

struct ack_groups {
	struct ack_group *v;
	size_t n, cap;
};

/* The store's row callbacks (store_user_fn, store_group_fn,
 * store_member_fn) filling the arrays; arg is the array (for members:
 * the struct ack_users of the group).  They return 0. */
int ack_add_friend(void *arg, uint32_t id, const char *name);
int ack_add_group(void *arg, uint32_t id, const char *name,
    const char *desc, const char *role);
int ack_add_member(void *arg, uint32_t id, const char *name,
    const char *role);

void ack_users_free(struct ack_users *u);
/* The list as FRIEND_LIST and GROUP_MEMBERS carry it: an array of
 * {"id":N,"name":"..."[,"role":"..."],"state":"..."} objects. */
struct cJSON *ack_users_json(const struct ack_users *l);
void ack_groups_free(struct ack_groups *g);

/* The parts of a successful LOGIN_ACK. */
struct ack_parts {
	uint32_t uid;
	const char *name;
	const struct cJSON *seq;		/* NULL when absent */
	const struct ack_users *friends;
	const struct ack_groups *groups;
	char *const *off_texts;		/* offline messages, each of */
	const size_t *off_lens;		/* off_lens[i] bytes, not NUL-ended */
	size_t off_n;
};

/* Append the LOGIN_ACK line, "\n" included, to out (out->oom is set
 * when memory ran out). */
void login_ack_write(struct jbuf *out, const struct ack_parts *a);

#endif
