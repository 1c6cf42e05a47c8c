/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Address allowlists: parsing with inet_pton, matching by prefix bits.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "base/cidr.h"
#include "base/xmalloc.h"

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static int	 cidr_parse_one(const char *, struct cidr *);
static bool	 cidr_prefix_eq(const uint8_t *, const uint8_t *, unsigned);

/* One "ADDRESS" or "ADDRESS/BITS"; 0 or -1. */
static int
cidr_parse_one(const char *s, struct cidr *c)
{
	char		 host[INET6_ADDRSTRLEN + 1], *end;
	const char	*slash = strchr(s, '/');
	size_t		 hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned	 max, i;
	long		 bits;
	uint8_t		 masked[16];

	if (hlen == 0 || hlen >= sizeof host)
		return (-1);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(c, 0, sizeof *c);
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return (-1);
	c->bits = max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9')
			return (-1);
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || bits < 0 || bits > (long)max)
			return (-1);
		c->bits = (unsigned)bits;
	}
	/* "192.0.2.1/24" is probably a mistake: say so. */
	memcpy(masked, c->addr, sizeof masked);
	for (i = c->bits; i < max; i++)
		masked[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	if (memcmp(masked, c->addr, max / 8) != 0)
		return (-1);
	return (0);
}

int
cidr_list_parse(const char *s, struct cidr_list *list, char **cause)
{
	char	*copy, *p, *tok;

	list->v = NULL;
	list->n = 0;
	copy = xstrdup(s != NULL ? s : "");
	for (p = copy; (tok = strsep(&p, " \t,")) != NULL;) {
		if (*tok == '\0')
			continue;
		list->v = xreallocarray(list->v, list->n + 1,
		    sizeof *list->v);
		if (cidr_parse_one(tok, &list->v[list->n]) != 0) {
			xasprintf(cause, "bad address or network \"%s\" "
			    "(want ADDRESS or ADDRESS/BITS with the host bits "
			    "zero)", tok);
			free(copy);
			cidr_list_free(list);
			return (-1);
		}
		list->n++;
	}
	free(copy);
	return (0);
}

void
cidr_list_free(struct cidr_list *list)
{
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

static bool
cidr_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned	 full = bits / 8, rest = bits % 8;
	uint8_t		 mask;

	if (memcmp(a, b, full) != 0)
		return (false);
	if (rest == 0)
		return (true);
	mask = (uint8_t)(0xff << (8 - rest));
	return ((a[full] & mask) == (b[full] & mask));
}

bool
cidr_list_match(const struct cidr_list *list, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const uint8_t			*a;
	int				 family;
	size_t				 i;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		a = (const uint8_t *)&sin->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		a = (const uint8_t *)&sin6->sin6_addr;
		family = AF_INET6;
		if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
			a += sizeof v4mapped;
			family = AF_INET;
		}
	} else
		return (false);
	for (i = 0; i < list->n; i++)
		if (list->v[i].family == family &&
		    cidr_prefix_eq(list->v[i].addr, a, list->v[i].bits))
			return (true);
	return (false);
}
