#!/bin/sh
# Install Ferry as a systemd service.
#
#   sudo systemd/install.sh [PATH_TO_FERRY_BINARY]    (default: ./target/release/ferry)
#
# With DESTDIR set (packaging), files are staged under $DESTDIR, the unit goes to
# /usr/lib/systemd/system instead of /etc/systemd/system, and nothing is started or reloaded.
set -eu

BIN=${1:-./target/release/ferry}
DESTDIR=${DESTDIR:-}
SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
EXAMPLE_CONFIG="$SCRIPT_DIR/ferry.toml"

die() {
    echo "install.sh: $*" >&2
    exit 1
}

case "$BIN" in
    -h|--help)
        sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

[ -f "$BIN" ] || die "binary not found: $BIN (build it with: cargo build --release)"
[ -f "$EXAMPLE_CONFIG" ] || die "example config not found: $EXAMPLE_CONFIG"
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR to stage files)"
fi

if [ -n "$DESTDIR" ]; then
    UNIT_DIR=/usr/lib/systemd/system
else
    UNIT_DIR=/etc/systemd/system
fi

install -d -m 0755 "$DESTDIR/usr/bin" "$DESTDIR$UNIT_DIR" \
    "$DESTDIR/usr/lib/sysusers.d" "$DESTDIR/usr/lib/tmpfiles.d" "$DESTDIR/etc/ferry"

install -m 0755 "$BIN" "$DESTDIR/usr/bin/ferry"
install -m 0644 "$SCRIPT_DIR/ferry.service" "$DESTDIR$UNIT_DIR/ferry.service"
install -m 0644 "$SCRIPT_DIR/ferry.sysusers" "$DESTDIR/usr/lib/sysusers.d/ferry.conf"
install -m 0644 "$SCRIPT_DIR/ferry.tmpfiles" "$DESTDIR/usr/lib/tmpfiles.d/ferry.conf"

# Never overwrite an existing configuration. The file may hold broker passwords: 0640, and
# group ferry (set below, once the group exists) so the service can read it.
NEW_CONFIG=no
if [ -e "$DESTDIR/etc/ferry/ferry.toml" ]; then
    echo "keeping existing $DESTDIR/etc/ferry/ferry.toml"
else
    install -m 0640 "$EXAMPLE_CONFIG" "$DESTDIR/etc/ferry/ferry.toml"
    NEW_CONFIG=yes
    echo "installed the default config to $DESTDIR/etc/ferry/ferry.toml"
fi

if [ -n "$DESTDIR" ]; then
    echo "staged Ferry under $DESTDIR (the package must chgrp ferry /etc/ferry/ferry.toml)"
    exit 0
fi

if ! command -v systemctl >/dev/null 2>&1; then
    echo "systemctl not found: files installed, but no systemd setup was done" >&2
    exit 0
fi

systemd-sysusers /usr/lib/sysusers.d/ferry.conf
systemd-tmpfiles --create /usr/lib/tmpfiles.d/ferry.conf
if [ "$NEW_CONFIG" = yes ]; then
    chgrp ferry /etc/ferry/ferry.toml
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
else
    echo "systemd is not running here: skipped systemctl daemon-reload" >&2
fi

cat <<'NEXT'

Ferry installed. Next steps:
  1. Edit /etc/ferry/ferry.toml, then check it:   ferry config check /etc/ferry/ferry.toml
  2. Start it now and at boot:                      systemctl enable --now ferry
  3. Follow its logs:                               journalctl -u ferry -f
NEXT
