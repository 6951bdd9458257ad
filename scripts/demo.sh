#!/usr/bin/env bash
# make demo: bring paf's userspace stack up on a TAP inside a fresh network namespace, serve HTTP,
# h2c and HTTPS (ALPN h2) from it, fetch with curl from the Linux kernel on the other side and
# with `paf get` from a second userspace stack, print what happened, and clean up (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/netns-lib.sh

if ! paf_require_root; then
  echo "demo: not root (or no /dev/net/tun): running the in-process version over the virtual switch instead."
  exec node scripts/demo-inprocess.mjs
fi

TAP=pafdemo0
paf_netns "paf-demo-$$"
WORK=$(mktemp -d)
PAF_TMP=$WORK
LOG=$WORK/serve.log
CERT=$WORK/cert.pem
dist/cli/main.js serve --tap "$TAP" --tap-netns "$PAF_NS" --ipv4 198.18.0.2/24 --ipv6 2001:db8::2/64 \
  --gateway 198.18.0.1 --http 80 --https 443 --cert-out "$CERT" --services echo >"$LOG" 2>&1 &
PAF_PIDS+=($!)
paf_wait_line "$LOG" "^listening" 15
paf_kernel_side "$TAP"
echo "== paf: $(grep ^listening "$LOG")"
grep "^self-signed" "$LOG" | sed 's/^/== /'
echo "== kernel side (namespace $PAF_NS): 198.18.0.1/24, 2001:db8::1/64 on $TAP"

run() { echo "\$ $*"; ip netns exec "$PAF_NS" "$@"; }
run ping -c 3 -i 0.2 198.18.0.2
run ping -6 -c 3 -i 0.2 2001:db8::2
run ping -c 2 -s 4000 198.18.0.2
echo "\$ echo hello paf | socat - UDP4:198.18.0.2:7"
ip netns exec "$PAF_NS" bash -c 'echo "hello paf over UDP/IPv4" | timeout 3 socat -t 1 - UDP4:198.18.0.2:7'
ip netns exec "$PAF_NS" bash -c 'echo "hello paf over UDP/IPv6" | timeout 3 socat -t 1 - UDP6:[2001:db8::2]:7'
fetch() {
  local label="$1"; shift
  echo "\$ curl $*"
  ip netns exec "$PAF_NS" curl -sS --max-time 10 -o $WORK/body \
    -w "   -> $label: HTTP/%{http_version} status %{http_code}, %{size_download} bytes in %{time_total}s\n" "$@"
  case "$label" in *MB*) ;; *) head -c 200 $WORK/body ;; esac
  rm -f $WORK/body
}
fetch "HTTP/1.1" http://198.18.0.2/
fetch "h2c (prior knowledge)" --http2-prior-knowledge http://198.18.0.2/
fetch "HTTPS, ALPN h2" --cacert "$CERT" --http2 https://198.18.0.2/
fetch "HTTPS over IPv6, ALPN h2" --cacert "$CERT" --http2 "https://[2001:db8::2]/"
fetch "HTTPS, 10 MB streamed" --cacert "$CERT" --http2 https://198.18.0.2/bytes/10000000
# The client side: paf get on a second userspace stack (its own TAP in the namespace, routed by
# the kernel there) fetches from the first over HTTPS with ALPN h2, verifying the certificate.
TAP2=pafdemo1
ip -n "$PAF_NS" tuntap add dev "$TAP2" mode tap
ip -n "$PAF_NS" addr add 198.19.0.1/24 dev "$TAP2"
ip -n "$PAF_NS" link set "$TAP2" up
ip netns exec "$PAF_NS" sysctl -qw net.ipv4.ip_forward=1
echo "\$ paf get --tap $TAP2 --ipv4 198.19.0.2/24 --gateway 198.19.0.1 --cacert $CERT -v https://198.18.0.2/"
dist/cli/main.js get --tap "$TAP2" --tap-netns "$PAF_NS" --ipv4 198.19.0.2/24 --gateway 198.19.0.1 \
  --cacert "$CERT" -v https://198.18.0.2/ 2>&1 | grep -v '^< \(date\|content-type\|content-length\)' | sed 's/^/   /'
run ip neigh show dev "$TAP"
echo "== demo done; namespace and TAP removed"
