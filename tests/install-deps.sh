#!/bin/sh
# Install what ewsgw needs to build, test and run its demo on Debian 12
# (as root).  Not root or no apt-get: says so and assumes they are there.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
	libcurl4-openssl-dev libxml2-dev libxml2-utils libevent-dev libssl-dev
	libsystemd-dev check valgrind clang mandoc systemd openssl curl
	python3 python3-exchangelib python3-lxml python3-cryptography
	ca-certificates etcd-server etcd-client"

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
	echo "== installing build and test dependencies"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
else
	echo "== not root or no apt-get: assuming dependencies are installed"
fi
