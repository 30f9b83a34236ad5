#!/bin/sh
# Off-router checks of the OpenWrt package files: shell syntax, UCI syntax, and that every
# file the Makefile installs exists in the tree. Prints "openwrt: ok".
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
sh -n "$here/files/coap2mqtt.init"
while IFS= read -r line; do
	case "$line" in
	"" | "#"* | "	#"* | "config "*" '"*"'" | "	option "*" '"*"'") ;;
	*) echo "openwrt: bad UCI line: $line"; exit 1 ;;
	esac
done < "$here/files/coap2mqtt.config"
for f in $(sed -n 's/.*\$(PKG_BUILD_DIR)\/\(config\/[^ ]*\.yaml\).*/\1/p' "$here/Makefile") \
	 $(sed -n 's/.*\.\/\(files\/[^ ]*\) .*/openwrt\/\1/p' "$here/Makefile"); do
	[ -f "$top/$f" ] || { echo "openwrt: $f is installed but missing"; exit 1; }
done
echo "openwrt: ok"
