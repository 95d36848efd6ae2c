/*
 * jsonw.h - writing JSON text directly into a growable buffer, for the
 * frames on the message path (one per chat message), where building a
 * cJSON tree and printing it cost more than everything else chatd does
 * per message.
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
/* Append s as a JSON string, quotes included. */
void jbuf_str(struct jbuf *b, const char *s);
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
