/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Bounded JSON parsing for Microsoft Graph, on Jansson.
 *
 * Why Jansson and not json-c (both are Debian 12 packages):
 *  - Safety by default: Jansson is strict RFC 8259 out of the box,
 *    validates UTF-8, refuses \u0000 inside strings (so every string is a
 *    C string without hidden truncation), refuses integers that do not fit
 *    in 64 bits, and refuses duplicate object members with
 *    JSON_REJECT_DUPLICATES (a hostile body cannot say "clientState" twice
 *    and have two readers see different values).  json-c accepts
 *    non-standard input unless JSON_TOKENER_STRICT is set, does not
 *    validate UTF-8 unless asked, and keeps the last duplicate silently.
 *  - Ownership: one reference count per value, getters that return
 *    borrowed pointers (json_object_get, json_string_value), one
 *    json_decref for a whole tree.  json-c has the same model
 *    (json_object_put) but its getters coerce types (json_object_get_int
 *    on a string parses it), which hides malformed input.
 *  - Limits: Jansson bounds nesting at JSON_PARSER_MAX_DEPTH (2048,
 *    compile time); we do not rely on that and refuse anything deeper than
 *    GJSON_MAX_DEPTH with a linear pre-scan before Jansson sees a byte,
 *    and refuse documents larger than the caller's cap.  json-c's depth is
 *    settable per tokener, which would have saved the pre-scan, and is the
 *    one point in its favour.
 *  - Streaming: not needed.  Graph answers are unary documents that the
 *    HTTP engine already caps; we parse them whole.  (json-c's incremental
 *    tokener would matter for a stream, and Graph has none we use.)
 *  - Maintenance: Jansson is small (one library, no dependencies), has a
 *    stable API since 2.0 and is maintained upstream and in Debian (2.14
 *    in bookworm); json-c is maintained too but had integer-overflow CVEs
 *    on large inputs (CVE-2020-12762) in the parser we would expose.
 *
 * Writing JSON stays with base/json.h's streaming writer, which escapes
 * by construction, builds no tree and writes secrets only into buffers
 * that are wiped on free.  Jansson's names (json_t, JSON_NULL,
 * json_null, ...) clash with that writer's, so this module is the only
 * one that includes <jansson.h>: everything else sees gjson_t and the
 * functions below.  Pure: buffers in, trees out.
 */
#ifndef EWSGW_GJSON_H
#define EWSGW_GJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GJSON_MAX_DEPTH		32		/* arrays and objects */
#define GJSON_MAX_DOC		(8 * 1024 * 1024)	/* default cap */

/* A parsed value: Jansson's json_t, opaque here. */
typedef struct json_t gjson_t;

/*
 * Parse len bytes (at most max; 0 = GJSON_MAX_DOC) into a tree (caller
 * owns it: gjson_free), or NULL with *cause set (allocated, caller
 * frees).  The top level must be an object.
 */
gjson_t	*gjson_parse(const char *, size_t, size_t max, char **cause);
void	 gjson_free(gjson_t *);

/* Values; all borrowed from the tree. */
bool	 gjson_is_null(const gjson_t *);	/* NULL counts as null */
bool	 gjson_is_object(const gjson_t *);
/* The string (borrowed), or NULL if v is not a string. */
const char *gjson_string(const gjson_t *v);
/* 0 and *out if v is an integer, else -1. */
int	 gjson_integer(const gjson_t *v, int64_t *out);
/* Array length (0 for a non-array) and element i (NULL past the end). */
size_t	 gjson_size(const gjson_t *arr);
const gjson_t *gjson_at(const gjson_t *arr, size_t i);
/*
 * Object members in document order: start with *iter = NULL; returns the
 * next key (borrowed) and *val, or NULL at the end.
 */
const char *gjson_next(const gjson_t *obj, void **iter,
	    const gjson_t **val);
/* Compact JSON text of v (allocated with xmalloc, caller frees). */
char	*gjson_dump(const gjson_t *v);

/* Members of obj; all NULL/dflt when obj is NULL or not an object. */
const gjson_t *gjson_get(const gjson_t *obj, const char *key);
/* Member as a string (borrowed), or NULL if absent or not a string. */
const char *gjson_str(const gjson_t *obj, const char *key);
/* Member as a boolean; dflt if absent or not a boolean. */
bool	 gjson_bool(const gjson_t *obj, const char *key, bool dflt);
/* Member as an integer; dflt if absent or not an integer. */
int64_t	 gjson_int(const gjson_t *obj, const char *key, int64_t dflt);
/* Member if it is an object / an array (borrowed), else NULL. */
const gjson_t *gjson_obj(const gjson_t *obj, const char *key);
const gjson_t *gjson_arr(const gjson_t *obj, const char *key);
/* A copy of the member's string (xstrdup) or NULL. */
char	*gjson_strdup(const gjson_t *obj, const char *key);

#endif
