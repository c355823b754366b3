#!/usr/bin/env bash
# Validates every SIPp scenario pair of tests/sipp/scenarios, with no ils-edge involved:
#   check.sh direct     UAC -> UAS on loopback (uas-reject-NNN.xml stand in for the proxy's rejects)
#   check.sh kamailio   UAC -> Kamailio 5.6 (tests/load/kamailio.cfg on 127.0.3.1) -> UAS
#   check.sh edge HOST  UAC -> a running ils-edge at HOST:5060 (e.g. 127.0.1.1, the HQ edge;
#                       phones at 127.0.1.20, UAS at 127.0.1.10 as in LAB.md)
# Every SIPp run is bounded (-m, -timeout); the whole script is bounded by `timeout`.
# Env: CALLS (per case, default 5), RATE (calls/s, default 10), KEEP=1 keeps the work dir.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sc=$here/scenarios/rfc3261
mode=${1:-direct}
calls=${CALLS:-5}
rate=${RATE:-10}
work=$(mktemp -d /tmp/sipp-check.XXXXXX)
phone=127.0.1.20
uas_ip=127.0.1.10
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [[ ${KEEP:-0} == 1 ]] && echo "work dir: $work" || rm -rf "$work"
}
trap cleanup EXIT

case $mode in
direct) target=$uas_ip:5060 ;;
kamailio)
    target=127.0.3.1:5060
    "$here/../load/gen-kamailio-db.sh" "$work/kdb" 1000 2>/dev/null
    kamailio -f "$here/../load/kamailio.cfg" -DD -E -m 128 -M 32 -A "DBURL=\"text://$work/kdb\"" \
        -A WITH_SANITY >"$work/kamailio.log" 2>&1 &
    pids+=($!)
    # Ready when it answers an OPTIONS-less probe: poll its UDP socket with a 404 call.
    for _ in $(seq 50); do
        timeout 5 sipp -sf "$sc/17.1.1.3-non-2xx-ack/uac-expect-404.xml" -s nobody -key dest_host hq.example.com \
            -i $phone -p 0 $target -m 1 -timeout 3s -timeout_error -nostdin >/dev/null 2>&1 && break
        sleep 0.2
    done
    ;;
edge) target=${2:?edge HOST}:5060 ;;
*) echo "usage: $0 direct|kamailio|edge HOST" >&2; exit 64 ;;
esac

pass=0; fail=0
# run_case NAME UAS_ARGS|- UAC_SCENARIO USER [extra UAC args...]
run_case() {
    local name=$1 uas=$2 uac=$3 user=$4; shift 4
    local d=$work/$name upid=
    mkdir -p "$d"
    if [[ $uas != - ]]; then
        # shellcheck disable=SC2086
        (cd "$d" && exec timeout 60 sipp $uas -i $uas_ip -p 5060 -m "$calls" -timeout 40s -nostdin \
            -trace_err >uas.out 2>&1) &
        upid=$!; pids+=("$upid")
        sleep 0.3
    fi
    (cd "$d" && timeout 60 sipp -sf "$uac" -s "$user" -key dest_host hq.example.com -p 0 "$target" \
        -m "$calls" -r "$rate" -timeout 40s -timeout_error -nostdin -trace_err -trace_stat -fd 1 "$@" \
        >uac.out 2>&1)
    local urc=$? src=0
    if [[ -n $upid ]]; then wait "$upid"; src=$?; fi
    # A TCP UAS fails the call still in its timewait when the UAC exits and closes the
    # connection (SIPp quirk); the UAC's result is the one that counts there.
    [[ $uas == *"-t t1"* ]] && src=0
    if [[ $urc == 0 && $src == 0 ]]; then
        pass=$((pass + 1)); echo "ok   $name"
    else
        fail=$((fail + 1)); echo "FAIL $name (uac rc=$urc, uas rc=$src; logs in $d)"; KEEP=1
    fi
}
reject() { echo "-sf $sc/21-final-responses/uas-reject-$1.xml"; }

run_case basic-udp "-sf $sc/13-invite/uas-answer.xml" "$sc/13-invite/uac-basic-call.xml" alice -i $phone
if [[ $mode == direct ]]; then
    run_case basic-tcp "-t t1 -sf $sc/13-invite/uas-answer.xml" "$sc/13-invite/uac-basic-call.xml" alice -i $phone -t t1
else
    run_case basic-tcp "-sf $sc/13-invite/uas-answer.xml" "$sc/13-invite/uac-basic-call.xml" alice -i $phone -t t1
fi
run_case busy-486 "-sf $sc/13-invite/uas-busy-486.xml" "$sc/17.1.1.3-non-2xx-ack/uac-expect-486.xml" alice -i $phone
run_case cancel-487 "-sf $sc/9-cancel/uas-ring-wait-cancel.xml" "$sc/9-cancel/uac-cancel-before-answer.xml" alice -i $phone
if [[ $mode == direct ]]; then
    run_case unknown-404 "$(reject 404 Not-Found)" "$sc/17.1.1.3-non-2xx-ack/uac-expect-404.xml" nobody -i $phone
    run_case forbidden-403 "$(reject 403 Forbidden)" "$sc/17.1.1.3-non-2xx-ack/uac-expect-403.xml" carol -i 127.0.9.9
    run_case max-forwards-483 "$(reject 483 Too-Many-Hops)" "$sc/17.1.1.3-non-2xx-ack/uac-expect-483.xml" alice -i $phone
    run_case unavailable-503 "$(reject 503 Service-Unavailable)" "$sc/17.1.1.3-non-2xx-ack/uac-expect-503.xml" alice -i $phone
else
    run_case unknown-404 - "$sc/17.1.1.3-non-2xx-ack/uac-expect-404.xml" nobody -i $phone
    run_case forbidden-403 - "$sc/17.1.1.3-non-2xx-ack/uac-expect-403.xml" carol -i 127.0.9.9
    run_case max-forwards-483 - "$sc/17.1.1.3-non-2xx-ack/uac-expect-483.xml" alice -i $phone
fi
if [[ $mode == kamailio ]]; then
    # Kamailio's table has failover@ (first destination dead, then the UAS) and unreachable@
    # (only a dead destination -> 503 after the 1 s INVITE timeout).
    run_case failover "-sf $sc/13-invite/uas-answer.xml" "$sc/13-invite/uac-basic-call.xml" failover -i $phone
    run_case unavailable-503 - "$sc/17.1.1.3-non-2xx-ack/uac-expect-503.xml" unreachable -i $phone
fi
if [[ $mode != direct ]]; then
    # Kamailio answers 400 to only some torture kinds (it drops the rest): require one.
    min=${MIN_400:-1}
    [[ $mode == edge ]] && min=${MIN_400:-}
    if "$here/scenarios/rfc4475/malformed-burst.py" --target "$target" --bind $phone --rounds 5 \
        ${min:+--min-400 "$min"} >"$work/malformed.out" 2>&1; then
        pass=$((pass + 1)); echo "ok   malformed-400 ($(cat "$work/malformed.out"))"
    else
        fail=$((fail + 1)); echo "FAIL malformed-400 ($(cat "$work/malformed.out"))"
    fi
fi
echo "$mode: $pass passed, $fail failed"
[[ $fail == 0 ]]
