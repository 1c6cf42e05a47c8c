/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Preflight connection probe: a TCP connect and a TLS handshake of our
 * own, next to curl, because curl only says "verification failed" while
 * an administrator needs to know which certificate, until when, for whom.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/timeutil.h"
#include "io/verify_tls.h"
#include "base/xmalloc.h"

struct verify_tls {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct bufferevent	*bev;
	struct event		 timer;
	SSL_CTX			*ctx;
	verify_tls_cb		 cb;
	void			*arg;
	char			*host;
	char			*ca_file;
	int			 port;
	bool			 https;
	bool			 finished;
	enum verify_tls_stage	 stage;	/* what is being attempted */
	char			 error[256];
};

static void	vt_timer(evutil_socket_t, short, void *);
static void	vt_tcp_event(struct bufferevent *, short, void *);
static void	vt_tls_event(struct bufferevent *, short, void *);
static void	vt_finish(struct verify_tls *, enum verify_tls_stage);
static void	vt_describe(struct verify_tls *, SSL *);
static int	vt_parse_url(struct verify_tls *, const char *);
static void	vt_openssl_error(struct verify_tls *, struct bufferevent *);

struct verify_tls *
verify_tls_start(struct event_base *base, const char *url,
    const char *ca_file, int64_t timeout_ms, verify_tls_cb cb, void *arg)
{
	struct verify_tls	*vt;
	struct timeval		 tv;

	vt = xcalloc(1, sizeof *vt);
	vt->base = base;
	vt->cb = cb;
	vt->arg = arg;
	vt->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	evtimer_assign(&vt->timer, base, vt_timer, vt);
	if (vt_parse_url(vt, url) == -1) {
		/* Report from the loop, never from inside start. */
		vt->stage = VERIFY_TLS_URL;
		evtimer_add(&vt->timer, time_ms_tv(&tv, 0));
		return (vt);
	}
	if (timeout_ms <= 0)
		timeout_ms = 15000;
	evtimer_add(&vt->timer, time_ms_tv(&tv, timeout_ms));

	vt->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	vt->stage = VERIFY_TLS_RESOLVE;
	vt->bev = bufferevent_socket_new(base, -1, 0);
	bufferevent_setcb(vt->bev, NULL, NULL, vt_tcp_event, vt);
	if (bufferevent_socket_connect_hostname(vt->bev, vt->dns, AF_UNSPEC,
	    vt->host, vt->port) == -1) {
		/* Synchronous failure: keep the report for the timer. */
		snprintf(vt->error, sizeof vt->error, "cannot connect to %s:%d",
		    vt->host, vt->port);
		vt->stage = VERIFY_TLS_CONNECT;
		evtimer_add(&vt->timer, time_ms_tv(&tv, 0));
	}
	return (vt);
}

void
verify_tls_cancel(struct verify_tls *vt)
{
	if (vt == NULL)
		return;
	if (vt->bev != NULL) {
		/* Without CLOSE_ON_FREE on the plain socket: close it here. */
		evutil_socket_t fd = bufferevent_getfd(vt->bev);
		bool ssl = vt->stage == VERIFY_TLS_HANDSHAKE ||
		    (vt->stage == VERIFY_TLS_DONE && vt->https);

		bufferevent_free(vt->bev);
		if (!ssl && fd != -1)
			evutil_closesocket(fd);
	}
	if (vt->dns != NULL)
		evdns_base_free(vt->dns, 0);
	evtimer_del(&vt->timer);
	if (vt->ctx != NULL)
		SSL_CTX_free(vt->ctx);
	free(vt->host);
	free(vt->ca_file);
	free(vt);
}

static int
vt_parse_url(struct verify_tls *vt, const char *url)
{
	CURLU	*u;
	char	*scheme = NULL, *host = NULL, *port = NULL;
	int	 rv = -1;

	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		snprintf(vt->error, sizeof vt->error, "cannot parse url");
		goto out;
	}
	vt->https = strcasecmp(scheme, "https") == 0;
	/* An IPv6 literal comes back in brackets. */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		vt->host = xstrdup(host + 1);
		vt->host[strlen(vt->host) - 1] = '\0';
	} else
		vt->host = xstrdup(host);
	vt->port = atoi(port);
	rv = 0;
out:
	if (vt->host == NULL)
		vt->host = xstrdup("");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return (rv);
}

static void
vt_timer(evutil_socket_t fd, short what, void *arg)
{
	struct verify_tls	*vt = arg;

	(void)fd;
	(void)what;
	if (vt->stage == VERIFY_TLS_URL || vt->stage == VERIFY_TLS_CONNECT) {
		if (vt->error[0] != '\0') {
			vt_finish(vt, vt->stage);
			return;
		}
	}
	snprintf(vt->error, sizeof vt->error, "no answer from %s:%d in time "
	    "(%s)", vt->host, vt->port,
	    vt->stage == VERIFY_TLS_RESOLVE ? "resolving or connecting" :
	    "TLS handshake");
	vt_finish(vt, VERIFY_TLS_TIMEOUT);
}

static void
vt_tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct verify_tls	*vt = arg;
	SSL			*ssl;
	evutil_socket_t		 fd;
	int			 dnserr, err;

	if (what & BEV_EVENT_CONNECTED) {
		if (!vt->https) {
			vt_finish(vt, VERIFY_TLS_DONE);
			return;
		}
		/* Hand the connected socket over to a TLS bufferevent. */
		fd = bufferevent_getfd(bev);
		bufferevent_setfd(bev, -1);
		bufferevent_free(bev);
		vt->bev = NULL;
		vt->ctx = SSL_CTX_new(TLS_client_method());
		if (vt->ctx == NULL) {
			evutil_closesocket(fd);
			snprintf(vt->error, sizeof vt->error,
			    "cannot set up TLS");
			vt_finish(vt, VERIFY_TLS_HANDSHAKE);
			return;
		}
		SSL_CTX_set_min_proto_version(vt->ctx, TLS1_2_VERSION);
		/* Verify, but let the handshake finish: we describe. */
		SSL_CTX_set_verify(vt->ctx, SSL_VERIFY_NONE, NULL);
		if (vt->ca_file != NULL)
			SSL_CTX_load_verify_locations(vt->ctx, vt->ca_file,
			    NULL);
		else
			SSL_CTX_set_default_verify_paths(vt->ctx);
		ssl = SSL_new(vt->ctx);
		if (ssl == NULL) {
			evutil_closesocket(fd);
			snprintf(vt->error, sizeof vt->error,
			    "cannot set up TLS");
			vt_finish(vt, VERIFY_TLS_HANDSHAKE);
			return;
		}
		/* SNI only for names, never for address literals. */
		{
			unsigned char	 tmp[16];

			if (evutil_inet_pton(AF_INET, vt->host, tmp) != 1 &&
			    evutil_inet_pton(AF_INET6, vt->host, tmp) != 1)
				SSL_set_tlsext_host_name(ssl, vt->host);
		}
		vt->stage = VERIFY_TLS_HANDSHAKE;
		vt->bev = bufferevent_openssl_socket_new(vt->base, fd, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (vt->bev == NULL) {
			SSL_free(ssl);
			evutil_closesocket(fd);
			snprintf(vt->error, sizeof vt->error,
			    "cannot set up TLS");
			vt_finish(vt, VERIFY_TLS_HANDSHAKE);
			return;
		}
		bufferevent_setcb(vt->bev, NULL, NULL, vt_tls_event, vt);
		bufferevent_enable(vt->bev, EV_READ);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		dnserr = bufferevent_socket_get_dns_error(bev);
		err = EVUTIL_SOCKET_ERROR();
		if (dnserr != 0) {
			snprintf(vt->error, sizeof vt->error,
			    "cannot resolve %s: %s", vt->host,
			    evutil_gai_strerror(dnserr));
			vt_finish(vt, VERIFY_TLS_RESOLVE);
		} else {
			snprintf(vt->error, sizeof vt->error,
			    "cannot connect to %s:%d: %s", vt->host, vt->port,
			    err != 0 ? evutil_socket_error_to_string(err) :
			    "connection closed");
			vt_finish(vt, VERIFY_TLS_CONNECT);
		}
	}
}

static void
vt_openssl_error(struct verify_tls *vt, struct bufferevent *bev)
{
	unsigned long	 e;
	char		 tmp[200];
	int		 err;

	e = bufferevent_get_openssl_error(bev);
	if (e != 0) {
		ERR_error_string_n(e, tmp, sizeof tmp);
		snprintf(vt->error, sizeof vt->error,
		    "TLS handshake with %s:%d failed: %s", vt->host, vt->port,
		    tmp);
		return;
	}
	err = EVUTIL_SOCKET_ERROR();
	snprintf(vt->error, sizeof vt->error,
	    "TLS handshake with %s:%d failed: %s", vt->host, vt->port,
	    err != 0 ? evutil_socket_error_to_string(err) :
	    "connection closed (is the port serving plain http?)");
}

static void
vt_tls_event(struct bufferevent *bev, short what, void *arg)
{
	struct verify_tls	*vt = arg;

	if (what & BEV_EVENT_CONNECTED) {
		vt_describe(vt, bufferevent_openssl_get_ssl(bev));
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		vt_openssl_error(vt, bev);
		vt_finish(vt, VERIFY_TLS_HANDSHAKE);
	}
}

/* The first DNS subjectAltName, else the subject CN. */
static void
vt_cert_name(X509 *cert, char *out, size_t outsz)
{
	GENERAL_NAMES	*sans;
	GENERAL_NAME	*gn;
	int		 i;

	out[0] = '\0';
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (sans != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			gn = sk_GENERAL_NAME_value(sans, i);
			if (gn->type == GEN_DNS) {
				snprintf(out, outsz, "%.*s",
				    ASN1_STRING_length(gn->d.dNSName),
				    (const char *)ASN1_STRING_get0_data(
				    gn->d.dNSName));
				break;
			}
		}
		GENERAL_NAMES_free(sans);
	}
	if (out[0] == '\0' && X509_NAME_get_text_by_NID(
	    X509_get_subject_name(cert), NID_commonName, out, (int)outsz) < 0)
		snprintf(out, outsz, "(no name)");
}

static void
vt_describe(struct verify_tls *vt, SSL *ssl)
{
	struct verify_tls_info	 info;
	X509			*cert;
	struct tm		 tm;
	char			 name[256], issuer[256];
	unsigned char		 tmp[16];
	bool			 ip;

	memset(&info, 0, sizeof info);
	info.stage = VERIFY_TLS_DONE;
	info.host = vt->host;
	info.port = vt->port;
	info.https = true;
	info.tls_version = SSL_get_version(ssl);
	info.verify_code = SSL_get_verify_result(ssl);
	info.verify_error = X509_verify_cert_error_string(info.verify_code);
	name[0] = issuer[0] = '\0';
	cert = SSL_get1_peer_certificate(ssl);
	if (cert == NULL) {
		snprintf(vt->error, sizeof vt->error,
		    "the server sent no certificate");
		vt_finish(vt, VERIFY_TLS_HANDSHAKE);
		return;
	}
	vt_cert_name(cert, name, sizeof name);
	if (X509_NAME_get_text_by_NID(X509_get_issuer_name(cert),
	    NID_commonName, issuer, sizeof issuer) < 0)
		X509_NAME_oneline(X509_get_issuer_name(cert), issuer,
		    sizeof issuer);
	ip = evutil_inet_pton(AF_INET, vt->host, tmp) == 1 ||
	    evutil_inet_pton(AF_INET6, vt->host, tmp) == 1;
	if (ip)
		info.host_ok = X509_check_ip_asc(cert, vt->host, 0) == 1;
	else
		info.host_ok = X509_check_host(cert, vt->host, 0, 0,
		    NULL) == 1;
	memset(&tm, 0, sizeof tm);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
		info.not_after = (int64_t)timegm(&tm);
	X509_free(cert);
	info.cert_name = name;
	info.issuer = issuer;
	vt->finished = true;
	vt->stage = VERIFY_TLS_DONE;
	event_del(&vt->timer);
	vt->cb(&info, vt->arg);
}

static void
vt_finish(struct verify_tls *vt, enum verify_tls_stage stage)
{
	struct verify_tls_info	 info;

	if (vt->finished)
		return;
	vt->finished = true;
	event_del(&vt->timer);
	memset(&info, 0, sizeof info);
	info.stage = stage;
	info.host = vt->host;
	info.port = vt->port;
	info.https = vt->https;
	info.error = vt->error[0] != '\0' ? vt->error : NULL;
	vt->cb(&info, vt->arg);
}
