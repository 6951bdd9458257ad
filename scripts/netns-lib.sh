# Shared helpers for scripts that put paf on a TAP inside a throwaway network namespace.
# Everything they create is named paf-* and removed by paf_cleanup (installed as an EXIT trap).
PAF_NS=""
PAF_PIDS=()
PAF_TMP=""

paf_require_root() {
  if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ]; then return 1; fi
  command -v ip >/dev/null || { echo "needs iproute2 (apt-get install iproute2)" >&2; return 1; }
}

paf_cleanup() {
  for p in "${PAF_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PAF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$PAF_NS" ]; then ip netns del "$PAF_NS" 2>/dev/null || true; fi
  if [ -n "$PAF_TMP" ]; then rm -rf "$PAF_TMP"; fi
}

# paf_netns NAME: create the namespace (lo up) and arrange for its removal.
paf_netns() {
  PAF_NS="$1"
  ip netns del "$PAF_NS" 2>/dev/null || true
  ip netns add "$PAF_NS"
  ip -n "$PAF_NS" link set lo up
  trap paf_cleanup EXIT
  trap 'exit 130' INT TERM
}

# paf_wait_line FILE PATTERN SECONDS: wait until FILE has a line matching PATTERN.
paf_wait_line() {
  local f="$1" pat="$2" t="${3:-10}"
  for _ in $(seq 1 $((t * 10))); do
    grep -q "$pat" "$f" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$pat' in $f:" >&2
  cat "$f" >&2
  return 1
}

# paf_kernel_side TAP: give the kernel's end of the TAP its addresses inside the namespace.
paf_kernel_side() {
  local tap="$1"
  ip -n "$PAF_NS" link set "$tap" up
  ip -n "$PAF_NS" addr add 198.18.0.1/24 dev "$tap"
  ip -n "$PAF_NS" -6 addr add 2001:db8::1/64 dev "$tap" nodad
}
