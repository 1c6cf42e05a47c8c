/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: any bytes as a configuration file must give either a
 * config or error messages, never a crash, hang or leak.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*cf;
	char		*errs = NULL, *what = NULL;
	size_t		 i;

	/* Real files are small; long inputs only slow the search down. */
	if (size > 256 * 1024)
		return (0);
	cf = conf_load_buffer("fuzz.conf", (const char *)data, size, &errs);
	if (cf == NULL) {
		/* A rejected file always says why. */
		if (errs == NULL || errs[0] == '\0')
			abort();
		free(errs);
		return (0);
	}
	if (errs != NULL)
		abort();
	/* A config equals itself; every sink has a name and a type. */
	if (conf_diff_keys(cf, cf, &what) != 0 || what != NULL)
		abort();
	for (i = 0; i < cf->nsinks; i++) {
		if (cf->sinks[i].name == NULL || cf->sinks[i].type == NULL)
			abort();
		if (cf->sinks[i].nkv > 0 && conf_sink_get(&cf->sinks[i],
		    cf->sinks[i].kv[0].key) != &cf->sinks[i].kv[0])
			abort();
	}
	for (i = 0; i < cf->nmailboxes; i++)
		if (strchr(cf->mailboxes[i].address, '@') == NULL)
			abort();
	conf_free(cf);
	return (0);
}
