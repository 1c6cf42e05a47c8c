/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SIP digest authentication, client side (RFC 3261 22.4 on RFC 2617,
 * SHA-256 per RFC 8760): the Authorization or Proxy-Authorization value
 * answering a 401/407 challenge.  Pure: strings in, string out.
 */
#ifndef EWSGW_SIP_DIGEST_H
#define EWSGW_SIP_DIGEST_H

#include <stdbool.h>
#include <stdint.h>

struct buf;

/* A Digest challenge, unquoted; all strings owned. */
struct sip_challenge {
	char	*realm;
	char	*nonce;
	char	*opaque;	/* or NULL */
	char	*algorithm;	/* or NULL (= MD5) */
	char	*qop;		/* the offered list, e.g. "auth,auth-int" */
	bool	 stale;
	bool	 proxy;		/* 407 Proxy-Authenticate */
};

void	 sip_challenge_clear(struct sip_challenge *);
/* A deep copy of src into dst (cleared first). */
void	 sip_challenge_copy(struct sip_challenge *dst,
	    const struct sip_challenge *src);

/*
 * Append the header value ("Digest username=...") answering ch for a
 * request method to uri, the nc-th use of the nonce, with cnonce (used
 * when qop=auth is offered).  Algorithms: MD5, MD5-sess, SHA-256,
 * SHA-256-sess; qop auth or none (auth-int alone is refused).  Returns
 * 0, or -1 with *cause set (allocated, caller frees).  password is a
 * secret: it never appears in out or *cause.
 */
int	 sip_digest_answer(struct buf *out, const struct sip_challenge *ch,
	    const char *username, const char *password, const char *method,
	    const char *uri, uint32_t nc, const char *cnonce, char **cause);

#endif
