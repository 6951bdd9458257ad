#!/bin/bash
# A bulk HTTP transfer against `paf serve --tap` in a throwaway namespace, with a CPU profile of
# the server (node --cpu-prof, written to OUT) and its /stats and the namespace's nstat after.
#   scripts/diag/bulk-profile.sh                 # curl GET of BYTES (default 3 GB)
#   MODE=up scripts/diag/bulk-profile.sh         # a streamed POST of BYTES to /sha256
#   DIST=dist NODEFLAGS=... OUT=/tmp/pd BYTES=...
# Summarise a profile with: node scripts/diag/profsum.mjs OUT/*.cpuprofile 30
# Root. Traffic stays inside the namespace (198.18.0.1 <-> 198.18.0.2); the namespace and the
# server are removed on exit, also on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/paf-bulk-profile}
BYTES=${BYTES:-3000000000}
NS=paf-pd$$
mkdir -p "$OUT"
ip netns add $NS
SRV=
cleanup() { [ -n "$SRV" ] && kill $SRV 2>/dev/null; sleep 1; ip netns pids $NS | xargs -r kill -9; ip netns del $NS; }
trap cleanup EXIT
ip -n $NS link set lo up
node --cpu-prof --cpu-prof-dir="$OUT" ${NODEFLAGS:-} "$ROOT/${DIST:-dist}/cli/main.js" serve --tap pafpd --tap-netns $NS --ipv4 198.18.0.2/24 --http 80 >"$OUT/serve.log" 2>&1 &
SRV=$!
for _ in $(seq 100); do grep -q listening "$OUT/serve.log" && break; sleep 0.1; done
ip -n $NS addr add 198.18.0.1/24 dev pafpd
ip -n $NS link set pafpd up
sleep 0.5
ip netns exec $NS nstat -n >/dev/null 2>&1
if [ "${MODE:-down}" = down ]; then
  ip netns exec $NS curl -sS -o /dev/null --max-time 120 -w 'download %{speed_download} B/s %{size_download} B\n' "http://198.18.0.2/bytes/$BYTES"
else
  ip netns exec $NS bash -c "head -c $BYTES /dev/zero | curl -sS -o /dev/null --max-time 120 -X POST -T - -w 'upload %{speed_upload} B/s\n' http://198.18.0.2/sha256"
fi
ip netns exec $NS curl -s http://198.18.0.2/stats >"$OUT/stats.json"
ip netns exec $NS nstat -az >"$OUT/nstat.txt" 2>&1
kill -INT $SRV
wait $SRV
SRV=
echo "profile, stats.json, nstat.txt in $OUT"
