#!/bin/sh
# fresh_debian.sh [ROOT] - runs the README's two commands, as written, as root
# in a fresh minimal Debian 12 (debootstrap --variant=minbase bookworm: no
# compiler, pkg-config or Meson), on a clean clone of this checkout's HEAD.
#
# Needs root, debootstrap and the network (Debian's mirror). Not part of
# any test suite: run it by hand after changing the README's commands,
# .ci/run or the build's dependencies. ROOT (default: a new directory under
# ${TMPDIR:-/tmp}) is removed at the end unless KEEP=1, or unless one of
# the host's directories mounted into it could not be unmounted (then it is
# left, and the script says so). Logs: ROOT.cmd1.log and ROOT.cmd2.log.
# Exit 0 when both commands exit 0.
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
mkdir -p "$root"
root=$(cd "$root" && pwd)
chmod 755 "$root" # apt's _apt user reads through it
mounted=""
cleanup() {
	# Processes a package or a test left running inside hold the mounts.
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
			kill -9 "${p#/proc/}" 2>/dev/null || true
		fi
	done
	unmounted=1
	for m in $mounted; do
		umount "$root/$m" || umount -l "$root/$m" || unmounted=0
	done
	if [ "$unmounted" = 0 ]; then
		echo "$0: could not unmount everything under $root; left in place" >&2
	elif [ "${KEEP:-0}" != 1 ]; then
		rm -rf --one-file-system "$root"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian \
	>"$root.debootstrap.log" 2>&1
git -c safe.directory="$src" clone -q "$src" "$root/root/tidemark"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No service a package installs (openssh-server, rsyslog) starts in here.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
for m in proc sys dev dev/pts; do
	mount --bind "/$m" "$root/$m"
	mounted="$m $mounted"
done

# The two commands: the apt-get line and the `bash .ci/run` line of the
# README's first fenced block.
block=$(awk '/^```sh/ { f = 1; next } f && /^```/ { exit } f' "$src/README.md")
cmd1=$(printf '%s\n' "$block" | grep '^apt-get' | head -n 1)
cmd2=$(printf '%s\n' "$block" | grep '^bash ' | head -n 1)
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
