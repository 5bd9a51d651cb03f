#!/bin/sh
# Install gridlib's systemd units (docs/deploy.md §1).  Run as root:
#
#   deploy/systemd/install.sh [--gridlib PATH] [--root DIR] [--no-reload]
#
#   --gridlib PATH  the gridlib command the units run (default: /opt/gridlib/bin/gridlib if it
#                   exists, else `command -v gridlib`); written into each unit's Exec lines
#   --root DIR      install under DIR instead of / (a staging tree, an image being built);
#                   implies --no-reload
#   --no-reload     do not run `systemctl daemon-reload`
#
# What it does, each step idempotent:
#   1. /etc/sysusers.d/gridlib.conf and `systemd-sysusers`: the gridlib system user and group
#   2. /etc/systemd/system/gridlib-{node,node@,scheduler,relay}.service, mode 644, with
#      /opt/gridlib/bin/gridlib replaced by --gridlib
#   3. /etc/gridlib/{node,scheduler,relay}.toml, mode 644, only where none exists yet
#   4. systemctl daemon-reload (when systemd runs)
# It enables and starts nothing: `systemctl enable --now gridlib-node` (or -scheduler, -relay).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=/
reload=yes
gridlib=
while [ $# -gt 0 ]; do
  case $1 in
    --gridlib) gridlib=$2; shift 2 ;;
    --root) root=$2; reload=no; shift 2 ;;
    --no-reload) reload=no; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$gridlib" ]; then
  if [ -x /opt/gridlib/bin/gridlib ]; then gridlib=/opt/gridlib/bin/gridlib
  else gridlib=$(command -v gridlib || true)
  fi
fi
case $gridlib in
  /*) ;;
  *) echo "install.sh: no gridlib command found: install gridlib (docs/deploy.md §1.1) or" \
          "name it with --gridlib /absolute/path" >&2; exit 2 ;;
esac
[ -x "$root/$gridlib" ] || [ -x "$gridlib" ] || {
  echo "install.sh: $gridlib is not an executable" >&2; exit 2; }

etc="${root%/}/etc"
install -d -m 755 "$etc/sysusers.d" "$etc/systemd/system" "$etc/gridlib"
install -m 644 "$here/gridlib.sysusers" "$etc/sysusers.d/gridlib.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
  if [ "$root" = / ]; then systemd-sysusers "$etc/sysusers.d/gridlib.conf"
  else systemd-sysusers --root "$root" "$etc/sysusers.d/gridlib.conf"
  fi
elif [ "$root" = / ] && ! id gridlib >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/gridlib --no-create-home \
          --shell /usr/sbin/nologin --comment "gridlib compute grid daemons" gridlib
fi

for unit in gridlib-node.service gridlib-node@.service gridlib-scheduler.service \
            gridlib-relay.service; do
  sed "s|/opt/gridlib/bin/gridlib|$gridlib|g" "$here/$unit" > "$etc/systemd/system/$unit.tmp"
  chmod 644 "$etc/systemd/system/$unit.tmp"
  mv "$etc/systemd/system/$unit.tmp" "$etc/systemd/system/$unit"
  echo "installed $etc/systemd/system/$unit"
done
for conf in node scheduler relay; do
  if [ -e "$etc/gridlib/$conf.toml" ]; then
    echo "kept $etc/gridlib/$conf.toml"
  else
    install -m 644 "$here/$conf.toml" "$etc/gridlib/$conf.toml"
    echo "installed $etc/gridlib/$conf.toml"
  fi
done

if [ "$reload" = yes ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
echo "next: edit /etc/gridlib/node.toml, then: systemctl enable --now gridlib-node"
