/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Address allowlists: "192.0.2.0/24 2001:db8::/32 198.51.100.7" parsed
 * once, then peer addresses matched against them.  Pure.
 */
#ifndef EWSGW_CIDR_H
#define EWSGW_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 addr[16];	/* network byte order */
	unsigned	 bits;		/* prefix length */
};

struct cidr_list {
	struct cidr	*v;		/* owned */
	size_t		 n;
};

#define CIDR_LIST_INIT	{ NULL, 0 }

/*
 * Parse addresses and networks separated by spaces or commas: ADDRESS
 * (a single host) or ADDRESS/BITS, IPv4 or IPv6, host bits zero.  On
 * success returns 0 with *list filled (free with cidr_list_free); on the
 * first bad entry -1 with *cause (allocated, caller frees) naming it and
 * *list empty.
 */
int	 cidr_list_parse(const char *, struct cidr_list *, char **cause);
void	 cidr_list_free(struct cidr_list *);
/*
 * Whether sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts
 * as IPv4) lies in one of the networks.  False for other families.
 */
bool	 cidr_list_match(const struct cidr_list *, const struct sockaddr *);

#endif
