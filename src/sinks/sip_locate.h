/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Locating SIP servers (RFC 3263): from a host, optional port and
 * transport to the ordered list of (transport, host, port) hops to try,
 * through NAPTR and SRV records when no port is given.  Non-blocking
 * (io/dns.h); addresses of each hop are looked up by the transport.
 */
#ifndef EWSGW_SIP_LOCATE_H
#define EWSGW_SIP_LOCATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_resolver;
struct event_base;
struct sip_locate;

enum sip_proto {
	SIP_PROTO_UDP,
	SIP_PROTO_TCP,
	SIP_PROTO_TLS,
	SIP_PROTO_ANY		/* let NAPTR/SRV choose */
};

struct sip_hop {
	enum sip_proto	 proto;
	char		*host;
	uint16_t	 port;
};

/* What to locate; strings borrowed for the call. */
struct sip_target {
	const char	*host;		/* name or IP literal */
	uint16_t	 port;		/* 0: from SRV, else 5060/5061 */
	enum sip_proto	 proto;		/* SIP_PROTO_ANY: from NAPTR/SRV */
	bool		 secure;	/* sips: only TLS will do */
	bool		 srv;		/* use NAPTR/SRV at all */
};

/* The hops (borrowed for the call), or n = 0 and why. */
typedef void	(*sip_locate_cb)(const struct sip_hop *, size_t n,
		    const char *error, void *arg);

/* "udp", "tcp", "tls"; "any" for SIP_PROTO_ANY. */
const char	*sip_proto_name(enum sip_proto);
/* The Via transport token: "UDP", "TCP", "TLS". */
const char	*sip_proto_via(enum sip_proto);

/*
 * Start locating t.  cb runs once, from the loop, unless cancelled.
 * Returns the lookup (owned by the caller until cb ran: pass it to
 * sip_locate_cancel before then to stop it; it frees itself after cb).
 */
struct sip_locate *sip_locate_start(struct dns_resolver *,
		    struct event_base *, const struct sip_target *,
		    sip_locate_cb, void *arg);

void		 sip_locate_cancel(struct sip_locate *);

#endif
