#!/bin/sh
# Refreshes static/vendor/xterm/ from npm: xterm.js and its fit add-on, at the exact
# versions below, as the browser loads them (ES modules and the stylesheet), with their
# licenses. The files are committed, so `make run` needs neither npm nor the network;
# run this (`make vendor-xterm`) only to change versions.
set -eu
XTERM=6.0.0
FIT=0.11.0
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/static/vendor/xterm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@xterm/xterm@$XTERM" "@xterm/addon-fit@$FIT" >/dev/null
mkdir xterm fit
tar xzf "xterm-xterm-$XTERM.tgz" -C xterm
tar xzf "xterm-addon-fit-$FIT.tgz" -C fit
mkdir -p "$dest"
# ES modules, named .js (the content type the server gives); without the source-map
# comment, since the maps are not shipped.
sed '/^\/\/# sourceMappingURL=/d' xterm/package/lib/xterm.mjs >"$dest/xterm.js"
sed '/^\/\/# sourceMappingURL=/d' fit/package/lib/addon-fit.mjs >"$dest/addon-fit.js"
cp xterm/package/css/xterm.css "$dest/xterm.css"
cp xterm/package/LICENSE "$dest/LICENSE-xterm"
cp fit/package/LICENSE "$dest/LICENSE-addon-fit"
printf '@xterm/xterm %s\n@xterm/addon-fit %s\n' "$XTERM" "$FIT" >"$dest/VERSIONS"
echo "static/vendor/xterm: @xterm/xterm $XTERM, @xterm/addon-fit $FIT"
