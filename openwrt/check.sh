#!/bin/sh
# Off-router checks of the OpenWrt package files (run by meson test and by hand): the init
# script's shell syntax and the procd calls it must make, the UCI file's syntax and knobs,
# that every file the Makefile installs exists in the tree and that the UCI default config
# path is one of them. Prints "openwrt: ok"; on a failure, what failed, and exits 1.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
init=$here/files/coap2mqtt.init
uci=$here/files/coap2mqtt.config
mk=$here/Makefile
fail=0

bad() {
	echo "openwrt: $*" >&2
	fail=1
}

# --- init script: syntax (ash is POSIX sh plus "local"), and the procd contract
sh -n "$init" || bad "coap2mqtt.init: shell syntax error"
for want in 'USE_PROCD=1' '-t -c "$config"' 'procd_set_param command' \
	'procd_set_param respawn' 'procd_set_param file' 'procd_set_param stderr 1' \
	'procd_set_param user' 'procd_add_reload_trigger coap2mqtt'; do
	grep -qF -- "$want" "$init" || bad "coap2mqtt.init: no '$want'"
done
# The daemon ignores SIGHUP: a reload_signal would make "reload" a no-op.
grep -q '^[^#]*reload_signal' "$init" && bad "coap2mqtt.init: reload_signal, but the daemon ignores SIGHUP"

# --- UCI file: config/option/list lines with sane quoting, one 'main' section
q="('[^']*'|\"[^\"]*\"|[^[:space:]'\"]+)"
re="^[[:space:]]*(#.*)?\$|^config [A-Za-z0-9_]+( ${q})?[[:space:]]*\$|^[[:space:]]+(option|list) [A-Za-z0-9_]+ ${q}[[:space:]]*\$"
lines=$(grep -Evn "$re" "$uci" || true)
[ -z "$lines" ] || bad "coap2mqtt.config: not UCI syntax: $lines"
first=$(grep -Ev '^[[:space:]]*(#.*)?$' "$uci" | head -n 1)
[ "$first" = "config coap2mqtt 'main'" ] || bad "coap2mqtt.config: first section is not config coap2mqtt 'main'"
for opt in enabled config log_level mqtt_url user; do
	grep -Eq "^[[:space:]]+option $opt " "$uci" || bad "coap2mqtt.config: no option $opt"
done
uci_config=$(sed -n "s/^[[:space:]]*option config '\(.*\)'.*/\1/p" "$uci")

# --- Makefile: every installed file exists (or is built), the UCI config path is installed
installs=$(awk '
	/^[[:space:]]*\$\(INSTALL_(BIN|CONF|DATA)\)/ {
		src = $2; dst = $3
		sub(/^\$\(1\)/, "", dst)
		if (dst ~ /\/$/) { n = split(src, p, "/"); dst = dst p[n] }
		print src, dst
	}' "$mk")
[ -n "$installs" ] || bad "Makefile: no \$(INSTALL_*) lines found"
dests=""
while read -r src dst; do
	[ -n "$src" ] || continue
	dests="$dests $dst"
	case "$src" in
	./files/*) f=$here/${src#./} ;;
	'$(PKG_BUILD_DIR)/'*) f=$top/${src#'$(PKG_BUILD_DIR)/'} ;;
	'$(MESON_BUILD_DIR)/'*)
		name=${src#'$(MESON_BUILD_DIR)/'}
		grep -q "executable('$name'" "$top/meson.build" || bad "Makefile: installs $src, which meson.build does not build"
		continue ;;
	*) bad "Makefile: installs $src from an unknown place"; continue ;;
	esac
	[ -f "$f" ] || bad "Makefile: installs $src, but ${f#"$top"/} is missing"
done <<EOF
$installs
EOF
for f in $(sed -n 's/^COAP2MQTT_FILES:=//p' "$mk"); do
	[ -e "$top/$f" ] || bad "Makefile: COAP2MQTT_FILES names $f, which is missing"
done
case " $dests " in
*" $uci_config "*) ;;
*) bad "coap2mqtt.config: config '$uci_config' is not a file the package installs" ;;
esac
grep -q '^/etc/config/coap2mqtt$' "$mk" && grep -q '^/etc/coap2mqtt/$' "$mk" ||
	bad "Makefile: conffiles must list /etc/config/coap2mqtt and /etc/coap2mqtt/"
backend=$(sed -n 's/^COAP2MQTT_DTLS_BACKEND ?= *//p' "$mk")
grep -q "'$backend'" "$top/meson_options.txt" || bad "Makefile: dtls_backend '$backend' is not a meson option value"
grep -q -- '-Dtests=false' "$mk" || bad "Makefile: MESON_ARGS lacks -Dtests=false"

# --- the main YAML's includes resolve next to it, as they will under /etc/coap2mqtt
for inc in $(awk '/^include:/ { on = 1; next } on && /^[[:space:]]*- / { print $2; next } on { on = 0 }' \
	"$top/config/coap2mqtt.yaml"); do
	[ -f "$top/config/$inc" ] || bad "config/coap2mqtt.yaml includes $inc, which is not in config/"
	case " $dests " in
	*" /etc/coap2mqtt/$inc "*) ;;
	*) bad "Makefile: does not install config/$inc as /etc/coap2mqtt/$inc" ;;
	esac
done

[ "$fail" -eq 0 ] || exit 1
echo "openwrt: ok"
