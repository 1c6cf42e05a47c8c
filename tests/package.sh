#!/bin/sh
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# The Debian package, built and installed on this machine (as root; run
# by tests/ci.sh):  tests/package.sh [SOURCE-TREE]
#   1. dpkg-buildpackage -us -uc -b in a clean copy of the tree, with
#      DEB_BUILD_OPTIONS=nocheck unless DEB_BUILD_OPTIONS is set (CI
#      runs the test suite itself), then lintian: no errors;
#   2. installs ewsgw_*.deb and checks what it did: /etc/ewsgw.conf is a
#      conffile, the ewsgw user exists (sysusers), /etc/ewsgw is
#      root:ewsgw 0750, the unit is installed but neither enabled nor
#      started;
#   3. runs the installed ewsgw --check-config against a test
#      configuration, and against the shipped one with a password put
#      where the unit loads it from (a root shell's preflight);
#   4. purges the package again, leaving the ewsgw user (as Debian does).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$(cd "$here/.." && pwd)}
[ "$(id -u)" -eq 0 ] || { echo "package.sh: run as root"; exit 1; }
work=$(mktemp -d /tmp/ewsgw-package.XXXXXX)
installed=0
cleanup() {
	if [ $installed -eq 1 ]; then
		apt_get purge ewsgw >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
	    -y -q "$@"
}
fail() {
	echo "FAIL: $*"
	exit 1
}

echo "== dpkg-buildpackage -us -uc -b"
"$here/copy-tree.sh" "$src" "$work/ewsgw"
(cd "$work/ewsgw" &&
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-"nocheck parallel=$(nproc)"} \
    dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 \
    || { tail -60 "$work/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$work"/ewsgw_*.deb)
echo "built ${deb##*/}"

echo "== lintian"
lintian --fail-on error --info "$work"/ewsgw_*.changes >"$work/lintian.log" 2>&1 \
    || { cat "$work/lintian.log"; fail "lintian reports errors"; }
grep -c '^[EW]:' "$work/lintian.log" | sed 's/^/lintian errors and warnings: /' || true
grep '^[EW]:' "$work/lintian.log" || true

echo "== install"
had_user=no
id ewsgw >/dev/null 2>&1 && had_user=yes
installed=1
apt_get install "$deb" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; fail "apt-get install"; }
dpkg-query -W -f='${Conffiles}\n' ewsgw | grep -q '^ /etc/ewsgw.conf ' \
    || fail "/etc/ewsgw.conf is no conffile"
id ewsgw >/dev/null 2>&1 || fail "no ewsgw user after install"
grep -q '^ *systemd-sysusers .*ewsgw.conf' /var/lib/dpkg/info/ewsgw.postinst \
    || fail "the postinst does not apply the sysusers entry"
[ "$(stat -c '%U:%G %a' /etc/ewsgw)" = "root:ewsgw 750" ] \
    || fail "/etc/ewsgw is $(stat -c '%U:%G %a' /etc/ewsgw), not root:ewsgw 750"
unit=$(dpkg -L ewsgw | grep '/systemd/system/ewsgw.service$') \
    || fail "no unit installed"
grep -q '^ExecStart=/usr/sbin/ewsgw ' "$unit" || fail "unit: $(grep ^ExecStart= "$unit")"
if ls /etc/systemd/system/*.wants/ewsgw.service >/dev/null 2>&1; then
	fail "the unit was enabled at install"
fi
if [ -d /run/systemd/system ] && systemctl is-active -q ewsgw; then
	fail "the service was started at install"
fi
[ $had_user = yes ] && made="existed before" || made="created by the package"
echo "installed: conffile, user ewsgw ($made), /etc/ewsgw root:ewsgw 750, $unit (disabled)"

echo "== the installed ewsgw --check-config"
(umask 077 && printf 'test-password\n' >"$work/password")
cat >"$work/test.conf" <<EOF
[exchange]
url = https://mail.example.com/EWS/Exchange.asmx
username = EXAMPLE\\svc-ewsgw
password_file = $work/password

[mailboxes]
mailbox = alice@example.com

[sink state]
type = file
path = /var/lib/ewsgw/presence.json
log = /var/log/ewsgw/changes.jsonl
EOF
/usr/sbin/ewsgw --check-config -c "$work/test.conf" || fail "check-config (test configuration)"
# The shipped file, preflighted from a root shell with the password
# where the unit's LoadCredential= takes it from.
install -m 0600 /dev/stdin /etc/ewsgw/ewsgw-password <<EOF
the-service-password
EOF
(unset CREDENTIALS_DIRECTORY; /usr/sbin/ewsgw --check-config) || fail "check-config (shipped configuration)"
/usr/sbin/ewsgw --version

echo "== purge"
installed=0
apt_get purge ewsgw >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
[ ! -e /etc/ewsgw.conf ] && [ ! -e /etc/ewsgw ] || fail "configuration left after purge"
echo "Debian package: ok"
