/*
 * jsonw.h - writing JSON text directly into a growable buffer, for the
 * frames on the message path (one per chat message), where building a
 * cJSON tree and printing it cost more than everything else chatd does
 * per message, and for LOGIN_ACK's lists of JSON inside JSON strings
 * (loginack.c).
 *
 * The output is byte for byte what cJSON_PrintUnformatted gives for the
 * same values: strings escaped the way cJSON escapes them, integers in
 * decimal.  tests/check_proto.c holds the two side by side.
 */
#ifndef CHATD_JSONW_H
#define CHATD_JSONW_H

#include <stddef.h>
#include <stdint.h>

struct jbuf {
	char *p;
	size_t len, cap;
	int oom;		/* set when a reservation failed */
};

/* b starts empty; jbuf_free releases p; jbuf_trim releases it when more
 * than keep bytes were reserved (a scratch a long line grew). */
void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_trim(struct jbuf *b, size_t keep);
/* Append bytes as they are. */
void jbuf_raw(struct jbuf *b, const char *s, size_t n);
/* Append a string literal as it is. */
#define jbuf_lit(b, s) jbuf_raw((b), "" s, sizeof(s) - 1)
/* Append s as a JSON string, quotes included; jbuf_strn: its first n
 * bytes (a NUL among them is escaped, not an end). */
void jbuf_str(struct jbuf *b, const char *s);
void jbuf_strn(struct jbuf *b, const char *s, size_t n);
/*
 * JSON nested in JSON strings, as the classic LOGIN_ACK has it (a member
 * printed into a string inside a group printed into a string): what a
 * text reads like `depth` strings deep, without printing it at each
 * depth and escaping the whole again.  jbuf_raw_deep appends JSON text
 * s (no control bytes; its '"' and '\\' are escaped once per level);
 * jbuf_str_deep appends s as a JSON string, quotes included, as
 * jbuf_strn would, then escaped `depth` times.  Depth 0 is as it is.
 */
void jbuf_raw_deep(struct jbuf *b, const char *s, size_t n, unsigned depth);
void jbuf_str_deep(struct jbuf *b, const char *s, size_t n, unsigned depth);
#define jbuf_lit_deep(b, s, d) jbuf_raw_deep((b), "" s, sizeof(s) - 1, (d))
/* Append v in decimal. */
void jbuf_u64(struct jbuf *b, uint64_t v);
/* Append item as cJSON_PrintUnformatted would: strings and int-sized
 * numbers directly, anything else through cJSON. */
struct cJSON;
void jbuf_json(struct jbuf *b, const struct cJSON *item);

/*
 * Length of the longest prefix of s[0..n) that a JSON string holds as it
 * is: no byte below 0x20, no '"' and no '\\'.  Eight bytes at a time.
 */
size_t json_plain_span(const char *s, size_t n);

#endif
