/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * ewsgw(8): command line, configuration check, preflight verify, and the
 * hand-over to the daemon's event loop.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/conf.h"
#include "daemon/daemon.h"
#include "base/log.h"
#include "daemon/verify.h"
#include "base/xmalloc.h"
#include "sinks/sinks.h"
#include "sinks/sinkset.h"

#ifndef EWSGW_SYSCONFDIR
#define EWSGW_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF EWSGW_SYSCONFDIR "/ewsgw.conf"

enum {
	OPT_CHECK = 256, OPT_VERIFY, OPT_MAILBOX, OPT_JSON, OPT_PROBE
};

static const struct option longopts[] = {
	{ "config",		required_argument,	NULL, 'c' },
	{ "foreground",		no_argument,		NULL, 'f' },
	{ "verbose",		no_argument,		NULL, 'v' },
	{ "check-config",	no_argument,		NULL, OPT_CHECK },
	{ "verify",		no_argument,		NULL, OPT_VERIFY },
	{ "mailbox",		required_argument,	NULL, OPT_MAILBOX },
	{ "json",		no_argument,		NULL, OPT_JSON },
	{ "probe-throttling",	no_argument,		NULL, OPT_PROBE },
	{ "version",		no_argument,		NULL, 'V' },
	{ "help",		no_argument,		NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* The version, and the sink types this build has. */
static void
print_version(void)
{
	const struct ewsgw_sink_ops *const	*b;

	printf("ewsgw %s\nsinks:", PACKAGE_VERSION);
	for (b = sink_builtins(); *b != NULL; b++)
		if (sink_type_built((*b)->name))
			printf(" %s", (*b)->name);
	printf(" plugin\n");
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: ewsgw [-fhVv] [-c file] [--check-config]\n"
"       ewsgw --verify [-c file] [--mailbox address]... [--json] "
    "[--probe-throttling]\n"
"\n"
"  -c, --config FILE     configuration file (default %s)\n"
"  -f, --foreground      stay in the foreground "
    "(systemd runs ewsgw this way)\n"
"  -v, --verbose         more logging; twice for debug\n"
"      --check-config    validate the configuration and exit "
    "(0 ok, 78 invalid)\n"
"      --verify          check the Exchange side and exit "
    "(0 when nothing failed)\n"
"      --mailbox ADDR    with --verify: mailbox to test impersonation with\n"
"      --json            with --verify: machine-readable report\n"
"      --probe-throttling with --verify: measure the allowed concurrency\n"
"  -V, --version         print the version and exit\n"
"  -h, --help            print this help and exit\n", DEFAULT_CONF);
}

/* Detach from the terminal: the classic double fork. */
static void
daemonize(void)
{
	pid_t	 pid;
	int	 fd;

	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid != 0)
		_exit(0);
	if (setsid() == -1)
		fatal("setsid");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid != 0)
		_exit(0);
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

int
main(int argc, char **argv)
{
	struct verify_opts	 opts;
	struct config		*conf;
	char			*errors = NULL;
	const char		*path = DEFAULT_CONF;
	int			 ch, verbose = 0, check = 0, verify = 0;
	int			 foreground = 0, rc;

	memset(&opts, 0, sizeof opts);
	while ((ch = getopt_long(argc, argv, "c:fhVv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'v':
			verbose++;
			break;
		case OPT_CHECK:
			check = 1;
			break;
		case OPT_VERIFY:
			verify = 1;
			break;
		case OPT_MAILBOX:
			opts.mailboxes = xreallocarray(
			    opts.mailboxes, opts.nmailboxes + 1,
			    sizeof *opts.mailboxes);
			opts.mailboxes[opts.nmailboxes++] = optarg;
			break;
		case OPT_JSON:
			opts.json = 1;
			break;
		case OPT_PROBE:
			opts.probe = 1;
			break;
		case 'V':
			print_version();
			return (0);
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (64);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (64);
	}
	if ((opts.nmailboxes || opts.json || opts.probe) &&
	    !verify) {
		fprintf(stderr, "ewsgw: --mailbox, --json and "
		    "--probe-throttling go with --verify\n");
		return (64);
	}

	log_init("ewsgw", check || verify ? LOG_TARGET_STDERR :
	    LOG_TARGET_AUTO, verbose > 1 ? LOG_DEBUG :
	    verbose ? LOG_INFO : LOG_NOTICE);

	if ((conf = conf_load(path, &errors)) == NULL) {
		fputs(errors != NULL ? errors : "invalid configuration\n",
		    stderr);
		free(errors);
		free(opts.mailboxes);
		return (CONF_EX_CONFIG);
	}
	free(errors);
	errors = NULL;
	if (daemon_validate(conf, &errors) == -1) {
		fputs(errors, stderr);
		free(errors);
		conf_free(conf);
		free(opts.mailboxes);
		return (CONF_EX_CONFIG);
	}
	if (check) {
		printf("%s: configuration ok (%zu mailboxes, %zu sinks)\n",
		    path, conf->nmailboxes, conf->nsinks);
		conf_free(conf);
		free(opts.mailboxes);
		return (0);
	}
	/* The config's level applies unless -v asked for more. */
	if (verbose == 0 || conf->log.level > log_get_level())
		log_set_level(conf->log.level);
	if (verbose > 1)
		log_set_level(LOG_DEBUG);

	if (verify) {
		rc = verify_run(conf, &opts);
		conf_free(conf);
		free(opts.mailboxes);
		return (rc);
	}

	if (!foreground)
		daemonize();
	rc = daemon_run(path, conf);	/* takes ownership of conf */
	free(opts.mailboxes);
	return (rc);
}
