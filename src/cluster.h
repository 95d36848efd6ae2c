/*
 * cluster.h - what a chatd node shares with the other nodes through Redis:
 * the names of keys and channels, the claim scripts, and a blocking
 * client for the callers that may block (job threads, the master).
 *
 * Keys and channels, under redis_prefix P:
 *   P online:UID   string "NODE_ID|TOKEN", with expiry presence_ttl: the
 *                  node holding UID's session (the claim).  Set with NX at
 *                  login, refreshed by its owner, deleted at logout.
 *                  Its expiry (its node stopped renewing it: dead, frozen,
 *                  cut off) is heard on Redis' keyevent channel
 *                  "__keyevent@0__:expired" (notify-keyspace-events Ex).
 *   P sweep        NODE_ID, with expiry: the node sweeping the claims
 *                  now (cluster_sweep_start).
 *   P gone:UID     "1", with expiry CLUSTER_GONE_TTL: UID's friends were
 *                  told "offline" when its claim expired.  Taken by one
 *                  node only (the others hear the same expiry), deleted
 *                  by the next claim, or by the renewal of a node that
 *                  was only frozen, which then tells them "online" again.
 *   P user:UID     channel: frames for UID, subscribed by its worker.
 *   P groups       channel: a group id whose membership changed.
 */
#ifndef CHATD_CLUSTER_H
#define CHATD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define CLUSTER_KEY_MAX 320

/*
 * The Lua scripts.  Redis keeps a script by the SHA1 of its text; chatd
 * has no SHA1 of its own, so each connection sends SCRIPT LOAD, keeps the
 * digest Redis answers, and runs the script with EVALSHA from then on
 * (EVAL with the whole text until the answer is in, and again for a
 * command that finds the script gone: NOSCRIPT after SCRIPT FLUSH).
 * A worker's publisher prefixes each text with a comment of its own
 * (bus.c says why).
 */

/* Claim KEYS[1] = ARGV[1] for ARGV[2] s: when it is free, already ours,
 * or held by a session of this node (its value starts with ARGV[3],
 * "NODE|").  The caller holds uid's entry in this host's presence table,
 * which has one entry per user, so such a session has ended here and its
 * release is in flight or was lost.  A claim deletes the user's gone
 * marker KEYS[2]: this session's end is a new one to tell.  Returns 1
 * when claimed, 0 when another node holds it. */
#define CLUSTER_LUA_CLAIM \
	"local v = redis.call('GET', KEYS[1]) " \
	"if v == false or v == ARGV[1] or " \
	"string.sub(v, 1, #ARGV[3]) == ARGV[3] then " \
	"redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) " \
	"redis.call('DEL', KEYS[2]) return 1 end " \
	"return 0"
/* Delete each KEYS[i] only when it still holds ARGV[i].  Returns the
 * number deleted (a worker's logout sends one key). */
#define CLUSTER_LUA_RELEASE \
	"local n = 0 " \
	"for i, k in ipairs(KEYS) do " \
	"if redis.call('GET', k) == ARGV[i] then " \
	"n = n + redis.call('DEL', k) end end " \
	"return n"
/* Claims deleted by one run of CLUSTER_LUA_RELEASE from the blocking
 * client (the master's, after a worker died or at start). */
#define CLUSTER_RELEASE_BATCH 500
/* Renew every claim KEYS[i] = ARGV[i + 1] for ARGV[1] s unless another
 * node holds it (a missing one is re-created).  Returns the positions
 * i (1-based) of the claims taken by someone else, usually none, and -i
 * for a claim re-created after it expired and the user's friends were
 * told "offline" (its gone marker, named from the claim's key, existed;
 * it is deleted).  Naming a key in the script is for a single Redis,
 * which chatd needs anyway (one script touches many users' keys). */
#define CLUSTER_LUA_REFRESH \
	"local taken = {} " \
	"for i, k in ipairs(KEYS) do " \
	"local v = redis.call('GET', k) " \
	"if v == false or v == ARGV[i + 1] then " \
	"redis.call('SET', k, ARGV[i + 1], 'EX', ARGV[1]) " \
	"if v == false and redis.call('DEL', " \
	"(string.gsub(k, 'online:(%d+)$', 'gone:%1'))) == 1 then " \
	"taken[#taken + 1] = -i end " \
	"else taken[#taken + 1] = i end end " \
	"return taken"
/* Claims renewed by one run of CLUSTER_LUA_REFRESH.  Bounds the command
 * (about 60 bytes per claim) and how long Redis runs one script. */
#define CLUSTER_REFRESH_BATCH 500

/* PUBLISH ARGV[2] on channel ARGV[1] only while KEYS[1] (the user's claim)
 * exists: a host that stopped renewing its claims (frozen, cut off) may
 * still hold a subscription, and a message it would swallow must be
 * stored instead.  Returns the receivers, 0 when unclaimed. */
#define CLUSTER_LUA_PUBLISH \
	"if redis.call('EXISTS', KEYS[1]) == 1 then " \
	"return redis.call('PUBLISH', ARGV[1], ARGV[2]) end return 0"
/* When the claim KEYS[1] has expired and is not taken again: take the gone
 * marker KEYS[2] for ARGV[1] s unless another node has.  Returns 1 when
 * taken (the caller tells the friends), else 0. */
#define CLUSTER_LUA_GONE \
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end " \
	"if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then " \
	"return 1 end return 0"
/* How long a gone marker lasts: a node frozen for longer tells no one
 * "online" again when it comes back (its users' next login does). */
#define CLUSTER_GONE_TTL 86400
/* Expire (instead of delete) each KEYS[i] that still holds ARGV[i], so
 * that Redis announces it as for a node that died: the claims a node
 * left in an earlier life.  Returns the number expired. */
#define CLUSTER_LUA_EXPIRE \
	"local n = 0 " \
	"for i, k in ipairs(KEYS) do " \
	"if redis.call('GET', k) == ARGV[i] then " \
	"n = n + redis.call('PEXPIRE', k, 1) end end " \
	"return n"
/* A script digest as Redis writes it (40 hex digits) and its NUL. */
#define CLUSTER_SHA_LEN 41
/* The payload of a "pull your offline messages" hint on a user channel
 * (frames always start with '{'). */
#define CLUSTER_PULL_HINT "pull"

void cluster_key_online(const struct conf *c, uint32_t uid, char *buf,
    size_t len);
void cluster_channel_user(const struct conf *c, uint32_t uid, char *buf,
    size_t len);
void cluster_channel_groups(const struct conf *c, char *buf, size_t len);
void cluster_key_gone(const struct conf *c, uint32_t uid, char *buf,
    size_t len);
/* The channel on which Redis names each key that expired. */
#define CLUSTER_CHANNEL_EXPIRED "__keyevent@0__:expired"
/* uid from a key name "P online:UID", 0 when it is not one. */
uint32_t cluster_key_online_uid(const struct conf *c, const char *key,
    size_t len);
/* The claim value of a session: node id and connection token. */
void cluster_claim_value(const struct conf *c, uint64_t token, char *buf,
    size_t len);
/* uid from a channel name "P user:UID", 0 when it is not one. */
uint32_t cluster_channel_uid(const struct conf *c, const char *channel,
    size_t len);

struct cluster;

/* A blocking client with redis_timeout; connects lazily.  NULL when Redis
 * is not configured.  It keeps a copy of conf: it goes on talking to the
 * server, and naming keys and claims, as conf said when it was opened. */
struct cluster *cluster_open(const struct conf *conf);
void cluster_close(struct cluster *cl);
/* Connect now, and at each connect check the server's settings that
 * chatd relies on, logging a warning for each that is wrong (the
 * master's client does). */
void cluster_check_server(struct cluster *cl);
/* 1 when a and b make the same client: Redis off in both, or the same
 * server, timeout, key prefix and node id. */
int cluster_conf_same(const struct conf *a, const struct conf *b);
/* 1 when uid is claimed by a session other than the one of this node
 * with `token` (logged in again; token 0: by any session), 0 when not,
 * -1 when Redis cannot say. */
int cluster_claimed_else(struct cluster *cl, uint32_t uid, uint64_t token);
/* uid's claim expired: 1 when this node is the one to tell its friends
 * (CLUSTER_LUA_GONE), 0 when not (claimed again, or another node is),
 * -1 when Redis cannot be asked. */
int cluster_gone_take(struct cluster *cl, uint32_t uid);
/* online[i] = 1 when ids[i] has a claim anywhere.  0, or -1 when Redis
 * cannot be asked (callers then know only their own host). */
int cluster_online(struct cluster *cl, const uint32_t *ids, size_t n,
    unsigned char *online);
/* End every claim this node (node_id) left behind in an earlier life, so
 * its users need not wait presence_ttl after a restart: each expires at
 * once (CLUSTER_LUA_EXPIRE), and the nodes that hear it tell the user's
 * friends.  Returns the number ended, or -1 when Redis cannot be asked. */
long cluster_release_node(struct cluster *cl);
/*
 * Redis expires a key whose time is up when it is read, or when its
 * background cycle finds it; that cycle samples some 200 keys a second
 * when few are stale, so among a million claims the one of a frozen
 * node's only user could go unnoticed for an hour, and its friends
 * untold.  A sweep SCANs the claims (SCAN expires each matching key it
 * meets, and Redis announces it), CLUSTER_SWEEP_COUNT keys to a call.
 * One node sweeps at a time: cluster_sweep_start takes the sweep for
 * `secs` seconds, 1 when taken (*cursor is then "0"), 0 when another
 * node has it, -1 when Redis cannot be asked; cluster_sweep_hold keeps it
 * `secs` seconds more, for a sweep longer than that.  cluster_sweep_step makes
 * one call and moves *cursor on (len bytes): 1 when the sweep is over
 * (the cursor came back to "0"), 0 when it goes on, -1 on an error.
 */
#define CLUSTER_SWEEP_COUNT 1000
int cluster_sweep_start(struct cluster *cl, int secs, char *cursor,
    size_t len);
void cluster_sweep_hold(struct cluster *cl, int secs);
int cluster_sweep_step(struct cluster *cl, char *cursor, size_t len);
/* Delete the claim of uids[i] where it is still the one of the session
 * tokens[i] of this node, CLUSTER_RELEASE_BATCH claims to a command.
 * Returns the number deleted, or -1 when Redis could not be asked for
 * all of them (those not asked expire after presence_ttl). */
long cluster_release(struct cluster *cl, const uint32_t *uids,
    const uint64_t *tokens, size_t n);

#endif
