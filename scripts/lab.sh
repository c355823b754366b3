#!/usr/bin/env bash
# The demo: the two-cluster lab of LAB.md on loopback addresses, with a test call.
#
#   HQ edge 127.0.1.1 (hub, hq.route)  <── ILS ──>  BR edge 127.0.2.1 (spoke, br.route)
#   HQ PBX  127.0.1.10 (SIPp UAS)                   BR phones 127.0.2.20 (SIPp UAC)
#
# BR learns alice@hq.example.com from HQ over ILS, and a call from the BR phones to
# sip:alice@hq.example.com goes BR edge -> HQ edge -> HQ PBX and back. Everything started here
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if ! command -v sipp >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing SIPp (sip-tester)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
    else
        echo "SIPp is needed for the demo: apt-get install sip-tester" >&2
        exit 1
    fi
fi

echo "== building ils-edge (release)"
cargo build --release --locked --bin ils-edge
bin=${CARGO_TARGET_DIR:-$root/target}/release/ils-edge
scen=$root/tests/sipp/scenarios/rfc3261

work=$(mktemp -d /tmp/ils-edge-lab.XXXXXX)
cp -r config/lab/. "$work"/
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "== logs and data kept in $work"
}
trap cleanup EXIT

wait_for() { # file pattern seconds
    for _ in $(seq 1 $(( $3 * 10 ))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

echo "== starting the HQ edge (hub) and the BR edge (spoke)"
"$bin" run --config "$work/hq.toml" 2>"$work/hq.log" & pids+=($!)
wait_for "$work/hq.log" "listening proto=udp" 10
"$bin" run --config "$work/br.toml" 2>"$work/br.log" & pids+=($!)
wait_for "$work/br.log" "listening proto=udp" 10

echo "== starting HQ's PBX (SIPp UAS at 127.0.1.10:5060)"
sipp -sf "$scen/13-invite/uas-answer.xml" -i 127.0.1.10 -p 5060 -timeout 120s -nostdin \
    >"$work/uas.out" 2>&1 & pids+=($!)

echo "== waiting until BR has learned alice@hq.example.com over ILS"
for i in $(seq 1 100); do
    if "$bin" learned --admin 127.0.2.1:9090 alice@hq.example.com 2>/dev/null | grep -q hq.route; then
        break
    fi
    [ "$i" = 100 ] && { echo "BR did not learn alice" >&2; exit 1; }
    sleep 0.1
done
"$bin" peers --admin 127.0.2.1:9090
"$bin" learned --admin 127.0.2.1:9090

echo "== route test at BR: sip:alice@hq.example.com from trunk br-pbx (live table)"
"$bin" route-test --admin 127.0.2.1:9090 --from br-pbx sip:alice@hq.example.com

echo "== calling sip:alice@hq.example.com from the BR phones (127.0.2.20)"
if (cd "$work" && sipp -sf "$scen/13-invite/uac-basic-call.xml" 127.0.2.1:5060 -i 127.0.2.20 -p 0 \
        -s alice -key dest_host hq.example.com -m 1 -d 500 -timeout 15s -timeout_error -trace_err \
        -nostdin >/dev/null 2>&1); then
    echo "call completed: INVITE, 180, 200, ACK, BYE, 200 through BR edge -> HQ edge -> HQ PBX"
else
    echo "call FAILED (see $work)" >&2
    exit 1
fi

echo "== and two that must not complete"
expect() { # label code target source user
    if (cd "$work" && sipp -sf "$scen/17.1.1.3-non-2xx-ack/uac-expect-$2.xml" "$3" -i "$4" -p 0 -s "$5" \
            -key dest_host hq.example.com -m 1 -timeout 15s -timeout_error -nostdin >/dev/null 2>&1); then
        echo "$1: $2 as expected"
    else
        echo "$1: did not get $2" >&2; return 1
    fi
}
expect "sip:nobody@hq.example.com from the BR phones" 404 127.0.2.1:5060 127.0.2.20 nobody
expect "sip:carol@hq.example.com from an unconfigured source (127.0.9.9)" 403 127.0.1.1:5060 127.0.9.9 carol
