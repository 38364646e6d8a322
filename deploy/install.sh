#!/bin/sh
# Installs (or removes) Weft on a Linux box from an unpacked release tarball,
# without internet. Run it as root from the tarball's directory:
#
#   tar xzf weft-v1.0.0-linux-arm64.tar.gz && cd weft-v1.0.0-linux-arm64
#   sudo ./install.sh                 # the edge agent
#   sudo ./install.sh --gateway       # the platform gateway instead
#   sudo ./install.sh --uninstall     # remove binary and unit, keep config and data
#   sudo ./install.sh --uninstall --purge   # also config, data and the user
#
# Running it again changes nothing that is already right, and says so; it
# never overwrites a config file. --root DIR installs into DIR as if it were
# / (for packaging and tests): users are added with useradd/userdel --prefix,
# units enabled with systemctl --root, and nothing is started.
# docs/deploy.md walks through it.
set -eu

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	echo "Options: --gateway --uninstall --purge --root DIR --no-start --help"
}

component=agent uninstall=0 purge=0 root="" start=1
while [ $# -gt 0 ]; do
	case "$1" in
	--gateway) component=gateway ;;
	--agent) component=agent ;;
	--uninstall) uninstall=1 ;;
	--purge) purge=1 ;;
	--root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; root="$2"; shift ;;
	--root=*) root="${1#--root=}" ;;
	--no-start) start=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ "$purge" = 1 ] && [ "$uninstall" = 0 ]; then
	echo "install.sh: --purge goes with --uninstall" >&2
	exit 2
fi
if [ -n "$root" ]; then
	case "$root" in /*) ;; *) root="$(pwd)/$root" ;; esac
	root="${root%/}"
	start=0
fi

here="$(cd "$(dirname "$0")" && pwd)"
user=weft
group=weft
bin="weft-$component"
unit="weft-$component.service"
config="$component.yaml"
if [ "$component" = agent ]; then datadir=/var/lib/weft; else datadir=/var/lib/weft-gateway; fi
bindir=/usr/local/bin
unitdir=/etc/systemd/system
confdir=/etc/weft

say() { printf '%s\n' "install.sh: $*"; }
die() { printf '%s\n' "install.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (sudo ./install.sh): I add a system user and a systemd unit"

# systemd is running as init (not merely installed)?
have_systemd() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# user_exists: the weft user is in the target system's user database.
user_exists() {
	if [ -n "$root" ]; then
		grep -q "^$user:" "$root/etc/passwd" 2>/dev/null
	else
		getent passwd "$user" >/dev/null
	fi
}

# id_of FILE NAME: the numeric id of NAME in the target's passwd or group file.
id_of() { awk -F: -v n="$2" '$1 == n { print $3; exit }' "$root/etc/$1"; }

in_group() { awk -F: -v g="$1" -v u="$user" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 } END { exit !found }' "$root/etc/group"; }

prefix_opt() { if [ -n "$root" ]; then printf '%s\n' "--prefix=$root"; fi; }

# put SRC DST MODE: install a file unless an identical one is there.
put() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		if [ "$(stat -c %a "$2")" = "${3#0}" ]; then
			say "unchanged $2"
			return 0
		fi
	fi
	install -D -m "$3" "$1" "$2"
	say "installed $2"
	changed=1
}

# mkdir_own DIR MODE OWNER GROUP: make a directory with this mode and owner.
mkdir_own() {
	uid=$(id_of passwd "$3") gid=$(id_of group "$4")
	if [ -d "$1" ] && [ "$(stat -c '%a %u %g' "$1")" = "${2#0} $uid $gid" ]; then
		say "unchanged $1"
		return 0
	fi
	install -d -m "$2" -o "$uid" -g "$gid" "$1"
	say "made $1 (mode $2, owner $3:$4)"
}

uninstall() {
	if have_systemd; then
		systemctl disable --now "$unit" 2>/dev/null || true
	elif [ -n "$root" ] && command -v systemctl >/dev/null 2>&1; then
		systemctl --root="$root" disable "$unit" >/dev/null 2>&1 || true
	fi
	for f in "$root$bindir/$bin" "$root$unitdir/$unit"; do
		if [ -e "$f" ]; then rm -f "$f"; say "removed $f"; fi
	done
	if have_systemd; then systemctl daemon-reload; fi
	if [ "$purge" = 0 ]; then
		say "kept $root$confdir and $root$datadir (add --purge to remove them and the user $user)"
		return 0
	fi
	for d in "$root$datadir" "$root$confdir"; do
		if [ -e "$d" ]; then rm -rf "$d"; say "removed $d"; fi
	done
	other=agent
	[ "$component" = agent ] && other=gateway
	if [ -e "$root$bindir/weft-$other" ]; then
		say "kept user $user: weft-$other is still installed"
	elif user_exists; then
		# shellcheck disable=SC2046
		userdel $(prefix_opt) "$user"
		say "removed user $user"
	fi
}

install_all() {
	[ -f "$here/$bin" ] || die "$here/$bin not found: run me from the unpacked release tarball (it holds $bin, systemd/ and examples/)"
	[ -f "$here/systemd/$unit" ] || die "$here/systemd/$unit not found: run me from the unpacked release tarball"
	# A binary for another architecture fails here, not at boot.
	if ! out=$("$here/$bin" version 2>&1); then
		die "$here/$bin does not run on this machine ($(uname -m)): $out. Take the tarball for this architecture (amd64, arm64, armv7 or 386)."
	fi
	say "$out"

	if user_exists; then
		say "unchanged user $user"
	else
		# shellcheck disable=SC2046
		useradd $(prefix_opt) --system --user-group --no-create-home --home-dir "$datadir" --shell /usr/sbin/nologin "$user"
		say "added system user $user (no login)"
	fi
	# Serial ports (RS-485 adapters) belong to dialout on Debian and Ubuntu.
	if [ "$component" = agent ] && grep -q '^dialout:' "$root/etc/group"; then
		if in_group dialout; then
			say "unchanged $user in group dialout"
		else
			# shellcheck disable=SC2046
			usermod $(prefix_opt) -a -G dialout "$user"
			say "added $user to group dialout (serial ports)"
		fi
	fi

	changed=0
	put "$here/$bin" "$root$bindir/$bin" 0755
	put "$here/systemd/$unit" "$root$unitdir/$unit" 0644
	# /etc/weft belongs to weft: the platform can push a new config, which
	# the agent writes there atomically (a temporary file, then a rename),
	# keeping the previous one as agent.yaml.prev.
	mkdir_own "$root$confdir" 0750 "$user" "$group"
	mkdir_own "$root$datadir" 0750 "$user" "$group"
	if [ -e "$root$confdir/$config" ]; then
		say "kept $root$confdir/$config (never overwritten)"
	else
		install -m 0640 -o "$(id_of passwd "$user")" -g "$(id_of group "$group")" "$here/examples/$config" "$root$confdir/$config"
		say "installed the sample $root$confdir/$config: edit it, then: $bin config check $confdir/$config"
		changed=1
	fi

	if have_systemd; then
		systemctl daemon-reload
		if ! systemctl is-enabled --quiet "$unit"; then systemctl enable --quiet "$unit"; say "enabled $unit"; else say "unchanged $unit enabled"; fi
		if [ "$start" = 1 ] && "$root$bindir/$bin" config check "$confdir/$config" >/dev/null 2>&1; then
			if [ "$changed" = 1 ] || ! systemctl is-active --quiet "$unit"; then
				systemctl restart "$unit"
				say "started $unit (journalctl -u $unit -f shows its log)"
			fi
		else
			say "not started: check the config with '$bin config check $confdir/$config', then: systemctl start $unit"
		fi
	elif command -v systemctl >/dev/null 2>&1; then
		if systemctl --root="${root:-/}" is-enabled --quiet "$unit" 2>/dev/null; then
			say "unchanged $unit enabled"
		else
			systemctl --root="${root:-/}" enable --quiet "$unit" 2>/dev/null
			say "enabled $unit (systemd is not running here: nothing started)"
		fi
	else
		say "no systemd here: run $bindir/$bin run --config $confdir/$config under your init system"
	fi
}

if [ "$uninstall" = 1 ]; then uninstall; else install_all; fi
