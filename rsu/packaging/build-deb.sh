#!/usr/bin/env bash
# Builds the Debian package of the roadside daemon: rsu_<version>_<arch>.deb with
#   /usr/bin/rsu                          the daemon (no simulator, no rerun)
#   /lib/systemd/system/rsu.service       its systemd unit
#   /etc/rsu/rsu.toml                     its configuration (a conffile)
#   /usr/share/rsu/site/yancheng/         the representative site, as a template for a surveyed one
#   /usr/share/doc/rsu/                   README, PROTOCOL, copyright
# and maintainer scripts that create the `rsu` system user and /etc/rsu/pki.
#
# Usage: rsu/packaging/build-deb.sh [--binary PATH] [--out DIR]
#   --binary PATH  package this rsu executable instead of building one
#                  (default: cargo build --release --locked -p rsu, the daemon alone)
#   --out DIR      where the .deb goes (default: target/debian)
# Needs dpkg-deb (Debian's dpkg package).
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=""
out="target/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  cargo build --release --locked -p rsu
  binary="${CARGO_TARGET_DIR:-target}/release/rsu"
fi
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable" >&2; exit 2; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/rsu_${version}_${arch}"

install -D -m 0755 "$binary" "$root/usr/bin/rsu"
install -D -m 0644 rsu/packaging/rsu.service "$root/lib/systemd/system/rsu.service"
install -D -m 0644 rsu/packaging/rsu.toml "$root/etc/rsu/rsu.toml"
for f in rsu/site/yancheng/*; do
  install -D -m 0644 "$f" "$root/usr/share/rsu/site/yancheng/$(basename "$f")"
done
install -D -m 0644 README.md "$root/usr/share/doc/rsu/README.md"
install -D -m 0644 PROTOCOL.md "$root/usr/share/doc/rsu/PROTOCOL.md"
cat > "$root/usr/share/doc/rsu/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rsu
License: Apache-2.0

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

install -d "$root/DEBIAN"
installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: rsu
Version: $version
Architecture: $arch
Maintainer: Open V2X RSU stack developers <rsu@localhost>
Section: net
Priority: optional
Installed-Size: $installed_kib
Depends: adduser
Description: V2X roadside-unit daemon
 Fuses roadside lidar and camera detections and connected vehicles' state
 reports into tracked objects, broadcasts them to vehicles over QUIC with
 mutual TLS, records everything as MCAP logs and serves Prometheus metrics.
CONTROL
echo "/etc/rsu/rsu.toml" > "$root/DEBIAN/conffiles"

cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd rsu >/dev/null; then
    adduser --system --group --home /var/lib/rsu --no-create-home --gecos "V2X roadside unit" rsu
  fi
  install -d -m 0750 -o root -g rsu /etc/rsu /etc/rsu/pki
  install -d -m 0750 -o rsu -g rsu /var/lib/rsu /var/lib/rsu/recordings
  chgrp rsu /etc/rsu/rsu.toml && chmod 0640 /etc/rsu/rsu.toml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable rsu.service >/dev/null || true
    if [ -e /etc/rsu/pki/rsu.pem ]; then
      systemctl restart rsu.service || true
    else
      echo "rsu: put the site CA and this RSU's certificate in /etc/rsu/pki (see /usr/share/doc/rsu/README.md), then: systemctl start rsu"
    fi
  fi
fi
exit 0
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop rsu.service >/dev/null || true
fi
exit 0
PRERM
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
  # Recordings are data, not configuration: they stay unless removed by hand.
  rm -rf /etc/rsu
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
dpkg-deb --root-owner-group --build "$root" "$out/rsu_${version}_${arch}.deb" >/dev/null
echo "$out/rsu_${version}_${arch}.deb"
