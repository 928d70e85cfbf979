#!/usr/bin/env bash
# Builds the Debian package of supasaasy: target/debian/supasaasy_<version>_<arch>.deb, with the
# release binary, a systemd unit, the example config under /etc/supasaasy and an environment file
# for its secrets, and a `supasaasy` system user made on install. Needs cargo and dpkg-deb.
#
#   packaging/deb/build.sh              # build it
#   sudo dpkg -i target/debian/supasaasy_*.deb
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
cargo build --release --locked --bin supasaasy

stage=target/debian/stage
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/supasaasy" \
    "$stage/usr/share/doc/supasaasy"
install -m 0755 target/release/supasaasy "$stage/usr/bin/supasaasy"
install -m 0644 packaging/systemd/supasaasy.service "$stage/lib/systemd/system/supasaasy.service"
install -m 0644 supasaasy.toml "$stage/etc/supasaasy/supasaasy.toml"
install -m 0640 packaging/deb/env "$stage/etc/supasaasy/env"
install -m 0644 README.md CHANGELOG.md "$stage/usr/share/doc/supasaasy/"
install -m 0644 LICENSE "$stage/usr/share/doc/supasaasy/copyright"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$script" "$stage/DEBIAN/$script"
done
printf '/etc/supasaasy/supasaasy.toml\n/etc/supasaasy/env\n' >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: supasaasy
Version: $version
Architecture: $arch
Maintainer: The supasaasy authors <supasaasy@localhost>
Depends: libc6, ca-certificates, adduser
Section: database
Priority: optional
Homepage: https://github.com/supasaasy/supasaasy
Description: Postgres mirror of Stripe and Intercom data
 A daemon that keeps a Postgres copy of an organisation's Stripe and Intercom
 data and keeps it right: webhooks, full and incremental syncs, jobs shared by
 several daemons through Postgres, metrics, alerts and health probes.
CONTROL

out="target/debian/supasaasy_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
