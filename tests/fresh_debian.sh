#!/bin/sh
# fresh_debian.sh [ROOT] - runs the README's two commands, as written, as root
# in a fresh minimal Debian 12 (debootstrap --variant=minbase bookworm: no
# compiler, pkg-config or Meson), on a clean clone of this checkout's HEAD.
#
# Needs root, debootstrap and the network (Debian's mirror). Not part of
# any test suite: run it by hand before a release, or after changing the
# README's commands or .ci/run. ROOT (default: a new directory under
# ${TMPDIR:-/tmp}) is removed at the end unless KEEP=1. Logs: ROOT.cmd1.log
# and ROOT.cmd2.log. Exit 0 when both commands exit 0.
set -eu

if [ "$(id -u)" != 0 ]; then
	echo "$0: must run as root (debootstrap, chroot)" >&2
	exit 2
fi
command -v debootstrap >/dev/null || {
	echo "$0: needs debootstrap (apt-get install debootstrap)" >&2
	exit 2
}
src=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$(mktemp -d "${TMPDIR:-/tmp}/tidemark-fresh.XXXXXX")}
mounted=""
cleanup() {
	for m in $mounted; do umount "$root/$m" || true; done
	if [ "${KEEP:-0}" != 1 ]; then rm -rf "$root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian \
	>"$root.debootstrap.log" 2>&1
git clone -q "$src" "$root/root/tidemark"
cp /etc/resolv.conf "$root/etc/resolv.conf"
for m in proc sys dev dev/pts; do
	mount --bind "/$m" "$root/$m"
	mounted="$m $mounted"
done

# The two commands are the README's first fenced block: the apt-get line
# and the `bash .ci/run` line.
cmd1=$(awk '/^```sh/ { f = 1; next } f && /^apt-get/ { print; exit }' "$src/README.md")
cmd2=$(awk '/^```sh/ { f = 1; next } f && /^bash / { print; exit }' "$src/README.md")
[ -n "$cmd1" ] && [ -n "$cmd2" ] || {
	echo "$0: the README's two commands were not found" >&2
	exit 1
}
status=0
n=1
for cmd in "$cmd1" "$cmd2"; do
	echo "== command $n: $cmd" >&2
	start=$(date +%s)
	if chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/sh -c "cd /root/tidemark && $cmd" >"$root.cmd$n.log" 2>&1; then
		echo "   passed in $(($(date +%s) - start)) s (log $root.cmd$n.log)" >&2
	else
		echo "   FAILED: exit $? after $(($(date +%s) - start)) s; the end of $root.cmd$n.log:" >&2
		tail -20 "$root.cmd$n.log" >&2
		status=1
	fi
	n=$((n + 1))
done
exit $status
