#!/usr/bin/env bash
# Makes onnxruntime-node's WebGPU EP usable on a machine without a GPU, for CI: Mesa 25 lavapipe
# (Debian 12's Mesa 22.3 is rejected with "No supported adapters") and, when the machine has
# none, the Vulkan loader, both unpacked into DIR (default .lvp/, git-ignored), not installed.
# Idempotent. Prints the `export` lines to eval on stdout and always exits 0: when something
# cannot be fetched (no route to Debian's backports), it writes the reason to DIR/unavailable,
# and the WebGPU tests skip and print it.
#   eval "$(bash scripts/setup-lavapipe.sh)"
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mkdir -p "${1:-$root/.lvp}" && cd "${1:-$root/.lvp}" && pwd)
lib="$dir/root/usr/lib/x86_64-linux-gnu"

fail() {
  echo "$1" > "$dir/unavailable"
  echo "setup-lavapipe: WebGPU tests will be skipped: $1" >&2
  exit 0
}

if [ ! -s "$dir/lvp.json" ] || [ ! -e "$lib/libvulkan_lvp.so" ]; then
  [ "$(id -u)" = 0 ] || fail "unpacking lavapipe needs root (apt-get download with private lists)"
  log=$(bash "$root/../shared/tools/lavapipe.sh" "$dir" 2>&1) || fail "lavapipe.sh failed: $(echo "$log" | tail -1)"
fi

# The WebGPU EP (Dawn) dlopens libvulkan.so.1; CI images often lack libvulkan1.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1 ' && [ ! -e "$lib/libvulkan.so.1" ]; then
  lists=$(mktemp -d); mkdir -p "$lists/partial"
  o="-oDir::State::Lists=$lists -oDebug::NoLocking=1"
  (apt-get $o update && cd "$dir" && apt-get $o download libvulkan1) >/dev/null 2>&1
  rm -rf "$lists"
  deb=$(ls "$dir"/libvulkan1_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || fail "could not download libvulkan1 (the Vulkan loader)"
  dpkg -x "$deb" "$dir/root"
fi

missing=$(LD_LIBRARY_PATH="$lib" ldd "$lib/libvulkan_lvp.so" | awk '/not found/ {print $1}' | tr '\n' ' ')
[ -z "$missing" ] || fail "lavapipe lacks shared libraries: $missing"

rm -f "$dir/unavailable"
echo "export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export VK_ICD_FILENAMES=$dir/lvp.json VK_DRIVER_FILES=$dir/lvp.json"
