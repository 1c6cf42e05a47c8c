/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * JSON: a streaming writer onto a struct buf (escaping by construction)
 * and a small bounded parser into a tree, for status replies, OAuth2
 * token answers and the CLI.
 */
#ifndef EWSGW_JSON_H
#define EWSGW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSON_MAX_DEPTH	32

/* ---- writer ---- */

struct json_writer {
	struct buf	*out;		/* borrowed */
	int		 depth;
	bool		 first[JSON_MAX_DEPTH];
	bool		 after_key;
};

void	json_writer_init(struct json_writer *, struct buf *);
void	json_obj_begin(struct json_writer *);
void	json_obj_end(struct json_writer *);
void	json_arr_begin(struct json_writer *);
void	json_arr_end(struct json_writer *);
void	json_key(struct json_writer *, const char *);
/* A string value; NULL writes null.  Invalid UTF-8 becomes U+FFFD. */
void	json_str(struct json_writer *, const char *);
void	json_strn(struct json_writer *, const char *, size_t);
void	json_int(struct json_writer *, int64_t);
void	json_double(struct json_writer *, double);
void	json_bool(struct json_writer *, bool);
void	json_null(struct json_writer *);
/* A value that is already JSON text (the caller has checked it). */
void	json_raw(struct json_writer *, const char *);

void	json_kv_str(struct json_writer *, const char *, const char *);
void	json_kv_int(struct json_writer *, const char *, int64_t);
void	json_kv_bool(struct json_writer *, const char *, bool);
/*
 * Seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ"; 0 and INT64_MAX
 * (no time known, none ahead) write null.
 */
void	json_kv_time(struct json_writer *, const char *, int64_t);

/* Append s to b as a quoted JSON string. */
void	json_quote(struct buf *, const char *, size_t);

/* ---- parser ---- */

enum json_type {
	JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
};

struct json_value {
	enum json_type		 type;
	char			*key;	/* member name inside an object */
	char			*str;	/* JSON_STRING, NUL-terminated */
	double			 num;	/* JSON_NUMBER */
	bool			 boolean;
	struct json_value	*child;	/* first element / member */
	struct json_value	*next;	/* next sibling */
};

/*
 * Parse len bytes.  Returns an allocated tree (free with json_free) or
 * NULL with *cause set (allocated, caller frees).  Depth is bounded by
 * JSON_MAX_DEPTH and size by the caller.
 */
struct json_value *json_parse(const char *, size_t, char **);
void	json_free(struct json_value *);
/* Member lookup in an object; borrowed; NULL if absent. */
const struct json_value *json_get(const struct json_value *, const char *);
/* Typed getters with a default. */
const char *json_get_str(const struct json_value *, const char *,
	    const char *);
double	json_get_num(const struct json_value *, const char *, double);
bool	json_get_bool(const struct json_value *, const char *, bool);

#endif
