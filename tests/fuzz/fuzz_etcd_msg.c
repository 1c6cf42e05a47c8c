/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: etcd gateway answers (etcd_resp_parse) and base64.
 * Whatever the bytes, the parser returns and every key and value it
 * hands out is as long as it says.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cluster/etcd_msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct etcd_resp	 r;
	struct buf		 b = BUF_INIT, e = BUF_INIT;
	char			*cause = NULL;
	size_t			 i;

	if (etcd_resp_parse((const char *)data, len, &r, &cause) == 0) {
		for (i = 0; i < r.nkvs; i++)
			if (strlen(r.kvs[i].key) > r.kvs[i].keylen ||
			    r.kvs[i].key[r.kvs[i].keylen] != '\0')
				abort();
		for (i = 0; i < r.nevents; i++)
			if (r.events[i].kv.key[r.events[i].kv.keylen] != '\0')
				abort();
	} else if (cause == NULL)
		abort();
	free(cause);
	etcd_resp_free(&r);

	/* Whatever decodes encodes back to the same text. */
	if (etcd_b64_decode((const char *)data, len, &b) == 0) {
		etcd_b64_encode(&e, b.data, b.len);
		if (e.len != len || memcmp(buf_str(&e), data, len) != 0)
			abort();
	}
	buf_free(&b);
	buf_free(&e);
	return (0);
}
