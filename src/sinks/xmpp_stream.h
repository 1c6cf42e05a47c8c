/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The XMPP component protocol (XEP-0114) on the wire, pure: an
 * incremental reader of the server's stream (libxml2's push parser
 * under SAX2: no DTD, no entities beyond the five predefined, bounded
 * stanzas) that reports the stream header, each top-level stanza and
 * the end; writers for the stream header, the handshake and the
 * presence stanzas.  Bytes in, events out; fuzzed and unit tested.
 */
#ifndef EWSGW_XMPP_STREAM_H
#define EWSGW_XMPP_STREAM_H

#include <stddef.h>

struct buf;
struct xmpp_reader;

/* Largest stanza accepted (bytes of the stream inside it, counted in
 * steps of 4 KiB). */
#define XMPP_STANZA_MAX		(256 * 1024)

enum xmpp_event {
	XMPP_EV_OPEN,		/* <stream:stream>: id, from */
	XMPP_EV_STANZA,		/* a top-level element ended */
	XMPP_EV_CLOSE		/* </stream:stream> */
};

/* What the sink needs of a stanza; strings borrowed for the callback. */
struct xmpp_stanza {
	const char	*name;		/* local name: presence, iq, handshake,
					 * error (stream:error), ... */
	const char	*ns;		/* its namespace URI or "" */
	const char	*type;		/* attributes, or NULL */
	const char	*from;
	const char	*to;
	const char	*id;
	const char	*child;		/* first child's local name, or NULL
					 * (the condition of a stream error) */
	const char	*child_ns;
};

typedef void	(*xmpp_reader_cb)(enum xmpp_event, const struct xmpp_stanza *,
		    void *arg);

/* A reader calling cb for each event; free with xmpp_reader_free. */
struct xmpp_reader *xmpp_reader_new(xmpp_reader_cb, void *arg);
void		 xmpp_reader_free(struct xmpp_reader *);
/* Later events go to arg (a new owner); not from inside a callback. */
void		 xmpp_reader_set_arg(struct xmpp_reader *, void *arg);

/*
 * Feed n bytes of the stream.  Events are reported from inside the call
 * (the callback must not free the reader).  Returns 0, or -1 with
 * *cause set (allocated, caller frees) for malformed XML, a DOCTYPE, an
 * entity, a stanza over XMPP_STANZA_MAX or nesting deeper than 32; the
 * reader is unusable after that.
 */
int		 xmpp_reader_feed(struct xmpp_reader *, const char *, size_t,
		    char **cause);

/* The opening of a component stream to domain. */
void		 xmpp_write_open(struct buf *, const char *domain);

/* <handshake> with hex SHA-1 of stream id and secret (XEP-0114). */
void		 xmpp_write_handshake(struct buf *, const char *stream_id,
		    const char *secret);

/*
 * A presence stanza from -> to.  type NULL is available presence with
 * show (NULL: none) and status (NULL: none); other types ("unavailable",
 * "subscribed", "unsubscribed") carry status only if given.
 */
void		 xmpp_write_presence(struct buf *, const char *from,
		    const char *to, const char *type, const char *show,
		    const char *status);

/* An error reply to an iq we do not serve (service-unavailable). */
void		 xmpp_write_iq_error(struct buf *, const char *from,
		    const char *to, const char *id);

#endif
