#!/usr/bin/env bash
# The one place that knows which system (Debian) packages paf's demo, tests and benchmarks use.
#
#   scripts/deps.sh demo|test|bench|all [--check]
#
# For the given use it checks what the scripts actually run (a binary on PATH, a file, or a
# Python module of the system python), and installs the packages that provide what is missing:
# as root with apt, `apt-get update` once, then a quiet `apt-get install`, saying what it installs.
# As non-root or without apt it prints the missing packages and the one command that installs
# them, and exits 1. `--check` only reports (exit 1 if anything is missing).
#
# Each row: what to check | the Debian package that provides it | the uses that need it.
#   bin:NAME   an executable on PATH (or in /usr/sbin, /sbin)
#   file:PATH  a file that must exist
#   glob:PAT   a file matching a shell pattern (for versioned paths)
#   py:MOD     a module importable by /usr/bin/python3 (Debian's python, not pyenv's)
# "tap" marks what only the root demo (TAP in a namespace) needs; the non-root demo runs
# in-process and needs only the build tools.
set -uo pipefail

ROWS='
bin:make          make             demo test bench
bin:g++           g++              demo test bench
bin:gcc           gcc              bench test
bin:python3       python3          demo test bench
bin:ip            iproute2         tap test bench
bin:ping          iputils-ping     tap test
bin:curl          curl             tap test
bin:socat         socat            tap test bench
bin:nft           nftables         test
bin:ethtool       ethtool          test
bin:nghttp        nghttp2-client   test
bin:h2load        nghttp2-client   test bench
bin:wrk           wrk              test bench
bin:iperf3        iperf3           bench
bin:openssl       openssl          test
bin:tcpdump       tcpdump          test
bin:nc            netcat-openbsd   test
bin:dnsmasq       dnsmasq-base     test
bin:nginx         nginx-light      test
bin:pebble        pebble           test
glob:/usr/lib/postgresql/*/bin/postgres postgresql test
bin:chromium      chromium         test
file:/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf fonts-liberation test
file:/usr/bin/python3 python3      test
py:scapy          python3-scapy    test
py:websockets     python3-websockets test
'

usage() { echo "usage: scripts/deps.sh demo|test|bench|all [--check]" >&2; exit 2; }
[ $# -ge 1 ] || usage
use="$1"
check_only=0
[ "${2:-}" = "--check" ] && check_only=1
case "$use" in demo|test|bench|all) ;; *) usage ;; esac

root=0
[ "$(id -u)" = 0 ] && root=1
# The demo runs over a TAP only as root with /dev/net/tun; otherwise it runs in-process.
tapdemo=0
[ "$use" = demo ] && [ $root = 1 ] && [ -c /dev/net/tun ] && tapdemo=1

present() {
  local what="$1"
  case "$what" in
    bin:*) PATH="$PATH:/usr/sbin:/sbin" command -v "${what#bin:}" >/dev/null 2>&1 ;;
    file:*) [ -e "${what#file:}" ] ;;
    glob:*) compgen -G "${what#glob:}" >/dev/null ;;
    py:*) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ${what#py:}" >/dev/null 2>&1 ;;
    *) echo "deps.sh: bad row '$what'" >&2; return 1 ;;
  esac
}

missing=()
while read -r what pkg uses; do
  [ -n "$what" ] || continue
  wanted=0
  for u in $uses; do
    if [ "$use" = all ] || [ "$u" = "$use" ] || { [ "$u" = tap ] && [ $tapdemo = 1 ]; }; then wanted=1; fi
  done
  [ $wanted = 1 ] || continue
  present "$what" && continue
  case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
done <<<"$ROWS"

[ ${#missing[@]} -eq 0 ] && exit 0

if [ $check_only = 1 ]; then
  echo "deps: missing for '$use': ${missing[*]}" >&2
  exit 1
fi
if [ $root != 1 ] || ! command -v apt-get >/dev/null 2>&1; then
  why="not root"
  [ $root = 1 ] && why="no apt-get on this machine"
  echo "deps: '$use' needs packages that are missing: ${missing[*]}" >&2
  echo "deps: $why, so nothing was installed. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing for '$use': ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "deps: apt-get failed:" >&2
  tail -n 30 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
# Check again: a package that installed without providing what we look for is a bug in this list.
still=()
while read -r what pkg uses; do
  [ -n "$what" ] || continue
  case " ${missing[*]} " in *" $pkg "*) present "$what" || still+=("$what ($pkg)") ;; esac
done <<<"$ROWS"
if [ ${#still[@]} -gt 0 ]; then
  echo "deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "deps: installed ${missing[*]}"
