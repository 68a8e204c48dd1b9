#!/usr/bin/env bash
# Installs ledgerd and tokenctl with their man pages, shell completions, the systemd unit and the
# example config (docs/operations.md, "Deploying with systemd").
#
#   deploy/install.sh [--prefix /usr/local] [--destdir DIR] [--bin-dir DIR]
#
#   --prefix    where binaries, man pages and completions go (default /usr/local); the unit's
#               ExecStart is rewritten to match
#   --destdir   stage everything under DIR (packaging): no user is created, systemd is not told
#   --bin-dir   take ledgerd and tokenctl from DIR instead of building them (release)
#
# Without --destdir, as root: creates the system user tokenledger, installs the unit, keeps an
# existing /etc/tokenledger/ledgerd.json, and runs `systemctl daemon-reload` (not enable or start:
# put the TLS material, access file and catalog in /etc/tokenledger first).
set -euo pipefail
repository="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/usr/local
destdir=""
bin_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        *) echo "usage: deploy/install.sh [--prefix DIR] [--destdir DIR] [--bin-dir DIR]" >&2; exit 64 ;;
    esac
done
if [ -z "$bin_dir" ]; then
    (cd "$repository" && swift build -c release --product ledgerd && swift build -c release --product tokenctl) >&2
    bin_dir="$(cd "$repository" && swift build -c release --show-bin-path)"
fi
root="$destdir"

install -d "$root$prefix/bin" "$root$prefix/share/man/man1" "$root$prefix/share/man/man8" \
    "$root$prefix/share/bash-completion/completions" "$root$prefix/share/zsh/site-functions" \
    "$root$prefix/share/fish/vendor_completions.d" "$root/etc/systemd/system" "$root/etc/tokenledger"
install -m 0755 "$bin_dir/ledgerd" "$bin_dir/tokenctl" "$root$prefix/bin/"

# Man pages, from each tool's own description of its arguments.
"$bin_dir/ledgerd" --experimental-dump-help | python3 "$repository/deploy/manpage.py" ledgerd 8 > "$root$prefix/share/man/man8/ledgerd.8"
"$bin_dir/tokenctl" --experimental-dump-help | python3 "$repository/deploy/manpage.py" tokenctl 1 > "$root$prefix/share/man/man1/tokenctl.1"

# Shell completions (swift-argument-parser writes them).
for tool in ledgerd tokenctl; do
    "$bin_dir/$tool" --generate-completion-script bash > "$root$prefix/share/bash-completion/completions/$tool"
    "$bin_dir/$tool" --generate-completion-script zsh > "$root$prefix/share/zsh/site-functions/_$tool"
    "$bin_dir/$tool" --generate-completion-script fish > "$root$prefix/share/fish/vendor_completions.d/$tool.fish"
done

sed "s|/usr/local/bin/ledgerd|$prefix/bin/ledgerd|" "$repository/deploy/ledgerd.service" > "$root/etc/systemd/system/ledgerd.service"
chmod 0644 "$root/etc/systemd/system/ledgerd.service"
if [ ! -e "$root/etc/tokenledger/ledgerd.json" ]; then
    install -m 0644 "$repository/deploy/ledgerd.json" "$root/etc/tokenledger/ledgerd.json"
fi

if [ -z "$destdir" ]; then
    if ! id tokenledger >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/tokenledger --no-create-home --shell /usr/sbin/nologin tokenledger
    fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi
echo "installed ledgerd and tokenctl under $root$prefix; unit $root/etc/systemd/system/ledgerd.service"
