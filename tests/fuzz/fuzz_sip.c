/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: what a SIP server sends the sip sink.  The input is
 * a TCP stream cut into messages by sip_frame, each parsed as a
 * response (libosip2 underneath), and the whole input once more as one
 * UDP datagram and as a SIP URI.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/sip_msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
one(const char *p, size_t n)
{
	struct sip_response	 r;
	char			*cause = NULL;

	if (sip_response_parse(p, n, &r, &cause) == 1)
		sip_response_clear(&r);
	free(cause);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data;
	size_t		 off = 0, skip, len;
	char		*cause = NULL, *s, host[256], tp[8];
	uint16_t	 port;
	bool		 tls;
	int		 rc;

	while (off < size) {
		rc = sip_frame(p + off, size - off, SIP_MSG_MAX, &skip, &len,
		    &cause);
		if (rc != 1)
			break;
		one(p + off + skip, len);
		off += skip + len;
	}
	free(cause);
	one(p, size);
	s = strndup(p, size);
	if (s != NULL) {
		(void)sip_uri_target(s, host, sizeof host, &port, &tls, tp,
		    sizeof tp);
		free(s);
	}
	return (0);
}
