#!/usr/bin/env bash
# Soak (issue 3, "Done when"): DURATION seconds (default 600) of calls at RATE through one
# proxy hop, as in run.sh (HQ phones -> proxy -> HQ UAS, random userNNNNN@hq.example.com),
# sampling the proxy's resident memory (its whole process tree, /proc) every 10 s. Prints the
# samples, min/max RSS and whether every call completed (exit 0 only then).
#
#   soak.sh CEILING                 rate = 70 % of CEILING calls/s (e.g. run.sh's highest clean)
#   RATE=2000 soak.sh               an explicit rate
# Env: PROXY (ils-edge | kamailio; default ils-edge), TRANSPORT (udp | tcp), DURATION (600),
# COUNT (100000 URIs), HOLD_MS (100), ILS_EDGE (binary), KEEP (1: keep the work dir).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ceiling=${1:-}
RATE=${RATE:-}
[[ -z $RATE && -n $ceiling ]] && RATE=$((ceiling * 70 / 100))
[[ -n $RATE ]] || { echo "usage: $0 CEILING (or RATE=N $0)" >&2; exit 64; }
PROXY=${PROXY:-ils-edge}
TRANSPORT=${TRANSPORT:-udp}
DURATION=${DURATION:-600}
COUNT=${COUNT:-100000}
HOLD_MS=${HOLD_MS:-100}
lib=$here/loadlib.py
work=$(mktemp -d /tmp/ils-edge-soak.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [[ ${KEEP:-0} == 1 ]]; then echo "work dir: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=${ILS_EDGE:-}
if [[ $PROXY == ils-edge && -z $bin ]]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
    (cd "$repo" && cargo build --release -q -p ils-edge) || exit 1
    bin=$CARGO_TARGET_DIR/release/ils-edge
fi
gen=$work/generated.csv
{ echo "uri,partition,directory number,advertise"
  awk -v c="$COUNT" 'BEGIN { for (i = 0; i < c; i++) printf "user%05d@hq.example.com,Directory URI,%d,true\n", i, 100000 + i }'; } >"$gen"
{ echo RANDOM; awk -F, 'NR > 1 { split($1, a, "@"); print a[1] ";" }' "$gen"; } >"$work/users.csv"

(cd "$work" && exec timeout $((DURATION + 300)) sipp -sf "$here/scenarios/uas-load.xml" -i 127.0.1.10 -p 5060 \
    -timeout $((DURATION + 240))s -nostdin -buff_size 8388608 >/dev/null 2>"$work/uas.err") &
pids+=($!)
case $PROXY in
kamailio)
    "$here/gen-kamailio-db.sh" "$work/kdb" "$gen" 2>/dev/null
    kamailio -f "$here/kamailio.cfg" -DD -E -m 1024 -M 256 -A "DBURL=\"text://$work/kdb\"" >"$work/kamailio.log" 2>&1 &
    proxy=$!; pids+=("$proxy"); target=127.0.3.1:5060
    ;;
ils-edge)
    cp -r "$repo/config/lab" "$work/lab"
    tail -n +2 "$gen" >>"$work/lab/hq-directory.csv"
    printf '\n[[route_pattern]]\npattern = "1XXXXX"\npartition = "Directory URI"\ntrunk = "hq-pbx"\n' >>"$work/lab/hq.toml"
    (cd "$work/lab" && exec "$bin" run --config hq.toml 2>"$work/hq.err" >/dev/null) &
    proxy=$!; pids+=("$proxy"); target=127.0.1.1:5060
    for _ in $(seq 300); do grep -q "listening proto=udp" "$work/hq.err" && break; sleep 0.1; done
    ;;
*) echo "PROXY must be ils-edge or kamailio" >&2; exit 64 ;;
esac
ok=0
for _ in $(seq 60); do
    (cd "$work" && timeout 10 sipp -sf "$here/scenarios/uac-load.xml" -inf "$work/users.csv" -key dest_host hq.example.com \
        -i 127.0.1.20 -p 0 "$target" -m 1 -timeout 5s -timeout_error -nostdin >/dev/null 2>&1) && { ok=1; break; }
    sleep 0.5
done
[[ $ok == 1 ]] || { echo "$PROXY not answering at $target" >&2; exit 1; }
"$lib" idle "$proxy" 1 60

calls=$((RATE * DURATION))
topt=(); [[ $TRANSPORT == tcp ]] && topt=(-t t1)
echo "# soak: $PROXY $TRANSPORT $RATE calls/s for ${DURATION}s ($calls calls), RSS of the proxy tree every 10 s"
mkdir -p "$work/run"
t0=$("$lib" ticks "$proxy")
(cd "$work/run" && exec timeout $((DURATION + 120)) sipp -sf "$here/scenarios/uac-load.xml" -inf "$work/users.csv" \
    -key dest_host hq.example.com -i 127.0.1.20 -p 0 "${topt[@]}" "$target" -r "$RATE" -m "$calls" -l "$calls" \
    -timeout $((DURATION + 60))s -nostdin -buff_size 8388608 -trace_stat -stf stat.csv -fd 10 \
    -trace_rtt -rtt_freq 10000 -trace_err -d "$HOLD_MS" >/dev/null 2>sipp.err) &
uac=$!; pids+=("$uac")
min=; max=; start=$(date +%s)
while kill -0 "$uac" 2>/dev/null; do
    r=$("$lib" rss "$proxy")
    [[ -z $min || $r -lt $min ]] && min=$r
    [[ -z $max || $r -gt $max ]] && max=$r
    echo "t=$(($(date +%s) - start))s rss_kb=$r"
    for _ in $(seq 100); do kill -0 "$uac" 2>/dev/null || break; sleep 0.1; done
done
wait "$uac"; rc=$?
sleep 3
t1=$("$lib" ticks "$proxy")
line=$("$lib" step "$work/run" "$RATE" "$DURATION" "$calls" $((t1 - t0)) 100000)
echo "$PROXY $TRANSPORT $line"
echo "rss_kb min=$min max=$max growth=$((max - min))"
if [[ $rc == 0 && $line == *" failed=0 unfinished=0 "* ]]; then
    echo "soak: every call completed"
else
    echo "soak: NOT every call completed (sipp exit $rc)"; exit 1
fi
