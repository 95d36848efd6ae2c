/*
 * loginack.c - LOGIN_ACK's lists and their direct writer (loginack.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "loginack.h"

/* Room for one more element of n (of size sz) in *v. */
static void
ack_grow(void **v, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return;
	ncap = *cap ? *cap * 2 : 16;
	if ((nv = realloc(*v, ncap * sz)) == NULL)
		fatalx("%s: out of memory", __func__);
	*v = nv;
	*cap = ncap;
}

/* s into dst of size cap, cut to fit (snprintf's "%s", at a tenth of
 * the cost: a row of a big group's members is copied per login). */
static void
ack_copy(char *dst, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);

	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int
ack_add(struct ack_users *l, uint32_t id, const char *name, const char *role)
{
	struct ack_user *u;

	ack_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v));
	u = &l->v[l->n++];
	u->id = id;
	u->online = 0;
	ack_copy(u->role, sizeof(u->role), role);
	ack_copy(u->name, sizeof(u->name), name);
	return 0;
}

int
ack_add_friend(void *arg, uint32_t id, const char *name)
{
	return ack_add(arg, id, name, "");
}

int
ack_add_member(void *arg, uint32_t id, const char *name, const char *role)
{
	return ack_add(arg, id, name, role);
}

int
ack_add_group(void *arg, uint32_t id, const char *name, const char *desc,
    const char *role)
{
	struct ack_groups *l = arg;
	struct ack_group *g;

	(void)role;
	ack_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v));
	g = &l->v[l->n++];
	memset(g, 0, sizeof(*g));
	g->id = id;
	if ((g->name = strdup(name)) == NULL ||
	    (g->desc = strdup(desc)) == NULL)
		fatalx("%s: out of memory", __func__);
	return 0;
}

void
ack_users_free(struct ack_users *u)
{
	free(u->v);
	memset(u, 0, sizeof(*u));
}

cJSON *
ack_users_json(const struct ack_users *l)
{
	cJSON *arr = cJSON_CreateArray(), *o;
	size_t i;

	for (i = 0; i < l->n; i++) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", l->v[i].id);
		cJSON_AddStringToObject(o, "name", l->v[i].name);
		if (l->v[i].role[0] != '\0')
			cJSON_AddStringToObject(o, "role", l->v[i].role);
		cJSON_AddStringToObject(o, "state", l->v[i].online ?
		    "online" : "offline");
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

void
ack_groups_free(struct ack_groups *g)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		free(g->v[i].name);
		free(g->v[i].desc);
		ack_users_free(&g->v[i].users);
	}
	free(g->v);
	memset(g, 0, sizeof(*g));
}

/*
 * The fixed parts of a user in a list of strings `depth` strings deep
 * (1: LOGIN_ACK's friends, 2: the members inside a group's string):
 * {"id":N,"name":"..."[,"role":"..."],"state":"..."} in the key order of
 * the cJSON objects chatd used to print, the string's quotes one level
 * up.  Made once per list: a member is then a few copies.
 */
struct ack_lits {
	struct jbuf open, name, role, online, offline;
};

static void
ack_lits_init(struct ack_lits *L, unsigned depth)
{
	memset(L, 0, sizeof(*L));
	jbuf_lit_deep(&L->open, "\"", depth - 1);
	jbuf_lit_deep(&L->open, "{\"id\":", depth);
	jbuf_lit_deep(&L->name, ",\"name\":", depth);
	jbuf_lit_deep(&L->role, ",\"role\":", depth);
	jbuf_lit_deep(&L->online, ",\"state\":\"online\"}", depth);
	jbuf_lit_deep(&L->online, "\"", depth - 1);
	jbuf_lit_deep(&L->offline, ",\"state\":\"offline\"}", depth);
	jbuf_lit_deep(&L->offline, "\"", depth - 1);
}

static void
ack_lits_free(struct ack_lits *L)
{
	jbuf_free(&L->open);
	jbuf_free(&L->name);
	jbuf_free(&L->role);
	jbuf_free(&L->online);
	jbuf_free(&L->offline);
}

static void
ack_part(struct jbuf *out, const struct jbuf *part)
{
	out->oom |= part->oom;
	jbuf_raw(out, part->p, part->len);
}

/* [ each user, as a string ], the list itself depth - 1 strings deep. */
static void
ack_users_write(struct jbuf *out, const struct ack_users *l, unsigned depth)
{
	struct ack_lits L;
	const struct ack_user *u;
	size_t i;

	jbuf_lit(out, "[");
	ack_lits_init(&L, depth);
	for (i = 0; i < l->n; i++) {
		u = &l->v[i];
		if (i > 0)
			jbuf_lit(out, ",");
		ack_part(out, &L.open);
		jbuf_u64(out, u->id);
		ack_part(out, &L.name);
		jbuf_str_deep(out, u->name, strlen(u->name), depth);
		if (u->role[0] != '\0') {
			ack_part(out, &L.role);
			jbuf_str_deep(out, u->role, strlen(u->role), depth);
		}
		ack_part(out, u->online ? &L.online : &L.offline);
	}
	ack_lits_free(&L);
	jbuf_lit(out, "]");
}

void
login_ack_write(struct jbuf *out, const struct ack_parts *a)
{
	const struct ack_group *g;
	size_t i;

	jbuf_lit(out, "{\"msgid\":");
	jbuf_u64(out, MSG_LOGIN_ACK);
	jbuf_lit(out, ",\"errno\":0,\"id\":");
	jbuf_u64(out, a->uid);
	jbuf_lit(out, ",\"name\":");
	jbuf_str(out, a->name);
	if (a->seq != NULL) {
		jbuf_lit(out, ",\"seq\":");
		jbuf_json(out, a->seq);
	}
	jbuf_lit(out, ",\"friends\":");
	ack_users_write(out, a->friends, 1);
	/* Each group is a string of {"id":N,"groupname":"...",
	 * "groupdesc":"...","users":[...]}, its members strings in it. */
	jbuf_lit(out, ",\"groups\":[");
	for (i = 0; i < a->groups->n; i++) {
		g = &a->groups->v[i];
		if (i > 0)
			jbuf_lit(out, ",");
		jbuf_lit(out, "\"{\\\"id\\\":");
		jbuf_u64(out, g->id);
		jbuf_lit_deep(out, ",\"groupname\":", 1);
		jbuf_str_deep(out, g->name, strlen(g->name), 1);
		jbuf_lit_deep(out, ",\"groupdesc\":", 1);
		jbuf_str_deep(out, g->desc, strlen(g->desc), 1);
		jbuf_lit_deep(out, ",\"users\":", 1);
		ack_users_write(out, &g->users, 2);
		jbuf_lit(out, "}\"");
	}
	jbuf_lit(out, "],\"offlinemsg\":[");
	for (i = 0; i < a->off_n; i++) {
		if (i > 0)
			jbuf_lit(out, ",");
		/* As cJSON_CreateString took it: up to a NUL. */
		jbuf_strn(out, a->off_texts[i], strnlen(a->off_texts[i],
		    a->off_lens[i]));
	}
	jbuf_lit(out, "]}\n");
}
