/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target for both ends of the control protocol.  Input "R..."
 * is a request line for the daemon's command table; "A<command>\n..." is
 * an answer for ewsgwctl's renderer.  Either must give a well-formed
 * result, never a crash, hang or leak.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "control/ctl_cmd.h"
#include "control/ctl_render.h"
#include "base/json.h"
#include "base/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A provider that echoes the hostile argument back through the writer. */
static int
echo_mailbox(struct json_writer *w, const char *addr, char **cause,
    void *arg)
{
	json_key(w, "mailbox");
	json_obj_begin(w);
	json_kv_str(w, "address", addr);
	json_obj_end(w);
	return (0);
}

static int
fail_resync(const char *addr, char **cause, void *arg)
{
	xasprintf(cause, "no such mailbox: %s", addr);
	return (-1);
}

static void
some_metrics(struct buf *b, void *arg)
{
	buf_puts(b, "ewsgw_up 1");	/* no newline: ctl_cmd adds one */
}

static const struct control_provider provider = {
	.mailbox = echo_mailbox,
	.resync = fail_resync,
	.metrics = some_metrics,
};

static void
request(const char *line, size_t len)
{
	struct buf		 out = BUF_INIT;
	struct json_value	*v;
	size_t			 n;

	ctl_cmd_exec(&provider, len % 2 == 0, line, len, &out, NULL);
	if (out.len == 0 || out.data[out.len - 1] != '\n')
		abort();
	if (out.data[0] != '{') {
		/* Only metrics answers in text, ending the protocol way. */
		if (ctl_answer_complete(out.data, out.len, true) != out.len)
			abort();
	} else {
		/* Exactly one line of JSON with a boolean "ok". */
		n = ctl_answer_complete(out.data, out.len, false);
		if (n != out.len)
			abort();
		if ((v = json_parse(out.data, out.len, NULL)) == NULL)
			abort();
		if (json_get(v, "ok") == NULL ||
		    json_get(v, "ok")->type != JSON_BOOL)
			abort();
		json_free(v);
	}
	buf_free(&out);
}

static void
answer(const char *data, size_t len)
{
	struct buf	 out = BUF_INIT, err = BUF_INIT;
	const char	*nl;
	char		 cmd[32];
	size_t		 clen;
	int		 rc;

	if ((nl = memchr(data, '\n', len)) == NULL)
		return;
	clen = (size_t)(nl - data);
	if (clen >= sizeof cmd)
		return;
	memcpy(cmd, data, clen);
	cmd[clen] = '\0';
	rc = ctl_render(cmd, nl + 1, len - clen - 1, false, &out, &err);
	if (rc != CTL_EXIT_OK && rc != CTL_EXIT_UNHEALTHY &&
	    rc != CTL_EXIT_FAILURE)
		abort();
	/* Nothing from the daemon reaches a terminal as an escape. */
	if (memchr(buf_str(&err), '\033', err.len) != NULL)
		abort();
	if (strcmp(cmd, "metrics") != 0 &&
	    memchr(buf_str(&out), '\033', out.len) != NULL)
		abort();
	buf_free(&out);
	buf_free(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return (0);
	if (data[0] == 'R')
		request((const char *)data + 1, size - 1);
	else if (data[0] == 'A')
		answer((const char *)data + 1, size - 1);
	return (0);
}
