/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The client assertion for OAuth 2.0 client credentials with a
 * certificate (Microsoft identity platform "certificate credentials",
 * RFC 7523 private_key_jwt): a JWT signed with the app's RSA key, PS256,
 * header x5t#S256 = base64url(SHA-256 of the certificate's DER).  Claims:
 * aud = the token URL, iss = sub = client id, jti (random), nbf = iat =
 * now, exp = now + GRAPH_JWT_LIFETIME_S.  Pure apart from OpenSSL's
 * random source; keys come in as PEM text, never from a path.
 */
#ifndef EWSGW_GRAPH_JWT_H
#define EWSGW_GRAPH_JWT_H

#include <stddef.h>
#include <stdint.h>

#define GRAPH_JWT_LIFETIME_S	600
#define GRAPH_ASSERTION_TYPE \
	"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

struct graph_jwt_key;

/*
 * The certificate (PEM) and its RSA private key (PEM; may be the same
 * text).  Returns a key (free with graph_jwt_key_free, which wipes it) or
 * NULL with *cause (allocated) when either does not load, the key is not
 * RSA, or it does not belong to the certificate.
 */
struct graph_jwt_key *graph_jwt_key_new(const char *cert_pem, size_t,
	    const char *key_pem, size_t, char **cause);
void	 graph_jwt_key_free(struct graph_jwt_key *);
/* base64url SHA-256 thumbprint (borrowed). */
const char *graph_jwt_thumbprint(const struct graph_jwt_key *);

/*
 * A signed assertion (allocated; a credential: free with
 * xfree_secret) or NULL with *cause.
 */
char	*graph_jwt_assertion(const struct graph_jwt_key *,
	    const char *client_id, const char *token_url, int64_t now,
	    char **cause);

#endif
