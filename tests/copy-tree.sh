#!/bin/sh
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# A clean copy of a source tree:  tests/copy-tree.sh SRC DEST
# In a git checkout: the files git tracks, as they are in the work tree,
# plus new files it does not ignore (so uncommitted changes are tested)
# except inside a build directory of the tree (one holding
# config.status), so build products are never copied.  Otherwise SRC
# must be unconfigured (no config.status: a tarball as unpacked) and is
# copied whole.
set -eu
src=$1 dest=$2
mkdir -p "$dest"
src=$(cd "$src" && pwd -P)
# The top of a git work tree (not a directory inside one, such as a copy
# under _build/, which git ignores).
if [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" = "$src" ]; then
	(cd "$src" && git ls-files --cached --others --exclude-standard |
	    while IFS= read -r f; do
		[ -e "$f" ] || continue
		case $f in */*) [ -f "${f%%/*}/config.status" ] && continue ;; esac
		printf '%s\n' "$f"
	    done |
	    tar -T - -cf -) | tar -C "$dest" -xf -
elif [ -f "$src/config.status" ]; then
	echo "copy-tree.sh: $src is configured in-tree and no git checkout;" \
	    "run 'make distclean' there first or use a clean tree" >&2
	exit 1
else
	cp -a "$src/." "$dest/"
fi
