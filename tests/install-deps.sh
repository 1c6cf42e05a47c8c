#!/bin/sh
# Install what ewsgw needs to build, test, package and run its demo on
# Debian 12 (as root).  Not root or no apt-get: says so and assumes they
# are there.  Waits for another apt or dpkg to finish rather than fail.
#
# Add a package a build, test or test server needs with a "need" line
# under the heading it belongs to (all go to one apt-get call).
set -eu

PACKAGES=""
need() { PACKAGES="$PACKAGES $*"; }

# build
need build-essential autoconf automake libtool pkg-config
# libraries, and check for the unit tests
need libcurl4-openssl-dev libxml2-dev libevent-dev libssl-dev \
	libsystemd-dev libjansson-dev check
# the sip sink's SIP parser and both protocol sinks' resolver
need libosip2-dev libc-ares-dev
# test tools: valgrind, clang (fuzzers), mandoc (manual lint),
# systemd-analyze, xmllint, git (clean copies of the tree), strace
# (the system calls the installed service makes)
need valgrind clang mandoc systemd libxml2-utils openssl curl git strace \
	ca-certificates
# the EWS simulator and its exchangelib cross-check
need python3 python3-exchangelib python3-lxml python3-cryptography
# the Debian package: dpkg-buildpackage, debhelper, lintian
need dpkg-dev debhelper lintian
# test servers (tests/ci.sh starts them)
# Kamailio and Prosody for the sip and xmpp sinks (their tests start
# them on loopback), with an XMPP client library and a DNS library for
# the test side
need kamailio kamailio-presence-modules kamailio-tls-modules prosody \
	python3-slixmpp python3-dnspython
# etcd for the cluster tests (etcdctl is the independent client)
need etcd-server etcd-client

# Seconds to wait for another apt or dpkg holding its lock.
LOCK_WAIT=${LOCK_WAIT:-900}

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	echo "== installing build and test dependencies"
	export DEBIAN_FRONTEND=noninteractive
	apt="apt-get -o DPkg::Lock::Timeout=$LOCK_WAIT -o Acquire::Retries=3"
	# apt-get update takes the lists lock, which DPkg::Lock::Timeout
	# does not cover on every apt: retry while another update runs.
	waited=0
	until $apt update -qq; do
		waited=$((waited + 10))
		[ $waited -le "$LOCK_WAIT" ] || { echo "apt-get update kept failing"; exit 1; }
		echo "apt-get update failed (another apt running?): retrying in 10 s"
		sleep 10
	done
	# shellcheck disable=SC2086
	$apt install -y -qq --no-install-recommends $PACKAGES >/dev/null
else
	echo "== not root or no apt-get: assuming dependencies are installed"
fi
