#!/usr/bin/env bash
# The load bed of issue 3 item 8: the same stepped SIPp call rate through ils-edge and through
# Kamailio 5.6 doing the same work, in one run, on the loopback addresses of LAB.md.
#
# One proxy hop for the comparison: SIPp UAC (HQ phones, 127.0.1.20) -> proxy -> SIPp UAS (HQ
# call control, 127.0.1.10:5060), calling a random userNNNNN@hq.example.com of a generated
# directory of COUNT URIs (SIPp -inf). The proxy is the HQ edge (127.0.1.1:5060; BR runs too,
# as in the lab, replicating HQ's directory) or Kamailio (127.0.3.1:5060, tests/load/kamailio.cfg,
# the same URIs in an htable). Why one hop: Kamailio's figures (ANCHORS.md) are for one hop, a
# second ils-edge hop would double the proxy's share of the machine while SIPp's stays the same,
# and on a 2-core machine two proxies plus two SIPps would measure contention, not the proxy.
#
# Per step it prints target and achieved calls/s, ok, failed, unfinished, retransmissions, p50
# and p99 INVITE->200 (ms, SIPp -trace_rtt: 1 ms resolution; it includes the UAS's 20 ms ring
# between 180 and 200, scenarios/uas-load.xml), the proxy's CPU microseconds per
# call (user+system of its process tree from /proc over the step plus SETTLE seconds, divided
# by completed calls) and whether the step is clean (ANCHORS.md: no failed or unfinished call,
# achieved >= 95 % of target, p99 <= 100 ms, every lower step clean). Then, per transport, the
# highest clean rate and the CPU per call at it of each proxy, and the ratios.
#
# Env (defaults): STEPS ("1000 2000 3000 4000 6000 8000 10000 12000 14000 16000"), STEP_SECS
# (10), SETTLE (3), TRANSPORTS ("udp tcp"), PROXIES ("ils-edge kamailio-qm kamailio":
# "kamailio-qm" is Kamailio as the Debian package runs it, with its default memory manager, the
# set-up of ANCHORS.md's figures; "kamailio" the same with TLSF, Kamailio at its best; also
# "sipp" = UAC -> UAS with no proxy, the SIPp ceiling), COUNT (100000), STOP_ON_DIRTY (1: a proxy's steps stop at
# its first unclean step), P99_MS (100), HOLD_MS (100: pause between ACK and BYE; with none, a
# multi-worker proxy may deliver the BYE before the ACK, which SIPp's UAS counts as a failure), ILS_EDGE (binary; default: cargo build --release),
# ROUNDS (1: how many times to run every proxy's steps, the proxies taking turns; with more,
# the summary also gives each proxy's median and the median of the rounds' ratios), KEEP (1:
# keep the work dir), OUT (also append the report to this file).
#   tests/load/run.sh
#   PROXIES=kamailio TRANSPORTS=udp STEPS="1000 2000 3000 4000" tests/load/run.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
STEPS=${STEPS:-"1000 2000 3000 4000 6000 8000 10000 12000 14000 16000"}
STEP_SECS=${STEP_SECS:-10}
SETTLE=${SETTLE:-3}
TRANSPORTS=${TRANSPORTS:-"udp tcp"}
PROXIES=${PROXIES:-"ils-edge kamailio-qm kamailio"}
COUNT=${COUNT:-100000}
STOP_ON_DIRTY=${STOP_ON_DIRTY:-1}
P99_MS=${P99_MS:-100}
HOLD_MS=${HOLD_MS:-100}
ROUNDS=${ROUNDS:-1}
lib=$here/loadlib.py
work=$(mktemp -d /tmp/ils-edge-load.XXXXXX)
pids=()
report=$work/report.txt

log() { echo "$*" | tee -a "$report"; }
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [[ -n ${OUT:-} ]] && cat "$report" >>"$OUT"
    if [[ ${KEEP:-0} == 1 ]]; then echo "work dir: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() { # stop PID: SIGTERM, then SIGKILL after 10 s
    local p=$1 i
    kill "$p" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }; sleep 0.1; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
}
for t in sipp kamailio python3; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 69; }; done

# The directory: COUNT generated URIs (ils-edge generate-directory when the binary exists).
bin=${ILS_EDGE:-}
if [[ -z $bin && " $PROXIES " == *" ils-edge "* ]]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
    (cd "$repo" && cargo build --release -q -p ils-edge) && bin=$CARGO_TARGET_DIR/release/ils-edge
fi
gen=$work/generated.csv
if [[ -n $bin && -x $bin ]]; then
    "$bin" generate-directory --count "$COUNT" --domain hq.example.com --out "$gen" || exit 1
else
    { echo "uri,partition,directory number,advertise"
      awk -v c="$COUNT" 'BEGIN { for (i = 0; i < c; i++) printf "user%05d@hq.example.com,Directory URI,%d,true\n", i, 100000 + i }'; } >"$gen"
fi
{ echo RANDOM; awk -F, 'NR > 1 { split($1, a, "@"); print a[1] ";" }' "$gen"; } >"$work/users.csv"
"$here/gen-kamailio-db.sh" "$work/kdb" "$gen" 2>/dev/null

log "# ils-edge load bed $(date -u +%FT%TZ) on $(nproc) cores: steps [$STEPS] x ${STEP_SECS}s, transports [$TRANSPORTS], $COUNT URIs"
log "# sipp: $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ]*' | head -1); $(kamailio -v | head -1)"

uas_pid=
start_uas() {
    (cd "$work" && exec timeout 7200 sipp -sf "$here/scenarios/uas-load.xml" -i 127.0.1.10 -p 5060 \
        -timeout 7000s -nostdin -buff_size 8388608 >/dev/null 2>"$work/uas.err") &
    uas_pid=$!; pids+=("$uas_pid")
    sleep 0.5
}

# Starts one proxy; sets proxy_pid and target. Returns 1 when it cannot run.
proxy_pid=
target=
start_proxy() {
    local name=$1
    case $name in
    sipp) proxy_pid=; target=127.0.1.10:5060 ;;
    kamailio | kamailio-qm)
        target=127.0.3.1:5060
        # TLSF memory manager: with the default (qm) the private heap the htable load leaves
        # behind makes qm_malloc about 60 % of a worker's time, which is not Kamailio at its best.
        local mem=(-x tlsf); [[ $name == kamailio-qm ]] && mem=()
        kamailio -f "$here/kamailio.cfg" -DD -E "${mem[@]}" -m 1024 -M 256 -A "DBURL=\"text://$work/kdb\"" \
            >"$work/kamailio.log" 2>&1 &
        proxy_pid=$!; pids+=("$proxy_pid")
        ;;
    ils-edge)
        [[ -n $bin && -x $bin ]] || { log "ils-edge: no binary, skipped"; return 1; }
        if "$bin" run --help 2>&1 | grep -q "unrecognized subcommand"; then
            log "ils-edge: this binary has no 'run' subcommand yet, skipped"; return 1
        fi
        rm -rf "$work/lab"; cp -r "$repo/config/lab" "$work/lab"
        tail -n +2 "$gen" >>"$work/lab/hq-directory.csv"
        # The generated DNs (100000...) need a route pattern; the lab's 1XXX covers 1001, 1002.
        printf '\n[[route_pattern]]\npattern = "1XXXXX"\npartition = "Directory URI"\ntrunk = "hq-pbx"\n' >>"$work/lab/hq.toml"
        (cd "$work/lab" && exec "$bin" run --config br.toml 2>"$work/br.err" >/dev/null) &
        pids+=($!)
        (cd "$work/lab" && exec "$bin" run --config hq.toml 2>"$work/hq.err" >/dev/null) &
        proxy_pid=$!; pids+=("$proxy_pid")
        target=127.0.1.1:5060
        local i
        for i in $(seq 300); do grep -q "listening proto=udp addr=127.0.1.1:5060" "$work/hq.err" && break; sleep 0.1; done
        grep -q "listening proto=udp" "$work/hq.err" || { log "ils-edge: HQ did not start: $(tail -3 "$work/hq.err")"; return 1; }
        ;;
    esac
    # Ready when a call to a generated URI completes (bounded), then idle (directory loaded,
    # replicated to BR).
    local i ok=0
    for i in $(seq 60); do
        (cd "$work" && timeout 10 sipp -sf "$here/scenarios/uac-load.xml" -inf "$work/users.csv" \
            -key dest_host hq.example.com -i 127.0.1.20 -p 0 "$target" -m 1 -timeout 5s \
            -timeout_error -nostdin >/dev/null 2>&1) && { ok=1; break; }
        sleep 0.5
    done
    [[ $ok == 1 ]] || { log "$name: not answering calls at $target, skipped"; return 1; }
    [[ -n $proxy_pid ]] && "$lib" idle "$proxy_pid" 1 60
    return 0
}

declare -A best_rate best_cpu
best=$work/best.tsv # round, proxy, transport, highest clean rate, CPU per call there
round=1
run_steps() {
    local name=$1 tr=$2 rate d t0 t1 line dirty=0 targ=$target
    local topt=(); [[ $tr == tcp ]] && topt=(-t t1)
    best_rate[$name/$tr]=0; best_cpu[$name/$tr]=nan
    for rate in $STEPS; do
        # One directory per round: the step reads every SIPp file in it.
        d=$work/$name-$tr-$rate-r$round; mkdir -p "$d"
        local calls=$((rate * STEP_SECS))
        t0=0; [[ -n $proxy_pid ]] && t0=$("$lib" ticks "$proxy_pid")
        (cd "$d" && timeout $((STEP_SECS + 60)) sipp -sf "$here/scenarios/uac-load.xml" -inf "$work/users.csv" \
            -key dest_host hq.example.com -i 127.0.1.20 -p 0 "${topt[@]}" "$targ" -r "$rate" -m "$calls" \
            -l "$calls" -timeout $((STEP_SECS + 30))s -nostdin -buff_size 8388608 -trace_stat -stf stat.csv \
            -fd 1 -trace_rtt -rtt_freq 1000 -trace_err -d "$HOLD_MS" >/dev/null 2>sipp.err)
        sleep "$SETTLE"
        t1=0; [[ -n $proxy_pid ]] && t1=$("$lib" ticks "$proxy_pid")
        line=$("$lib" step "$d" "$rate" "$STEP_SECS" "$calls" $((t1 - t0)) "$P99_MS")
        [[ -z $proxy_pid ]] && line=${line/cpu_us_per_call=* clean/cpu_us_per_call=- clean}
        log "$(printf '%-8s %-3s %s' "$name" "$tr" "$line")"
        if [[ $dirty == 0 && $line == *clean=yes* ]]; then
            best_rate[$name/$tr]=$rate
            best_cpu[$name/$tr]=$(sed -n 's/.*cpu_us_per_call=\([^ ]*\).*/\1/p' <<<"$line")
        else
            dirty=1
            [[ $STOP_ON_DIRTY == 1 ]] && break
        fi
        # Let the proxy drain (retransmissions, timewait) before the next step.
        [[ -n $proxy_pid ]] && "$lib" idle "$proxy_pid" 1 20
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$tr" "${best_rate[$name/$tr]}" "${best_cpu[$name/$tr]}" >>"$best"
}

for round in $(seq "$ROUNDS"); do
(( ROUNDS > 1 )) && log "# round $round of $ROUNDS"
for name in $PROXIES; do
    start_uas
    if start_proxy "$name"; then
        for tr in $TRANSPORTS; do
        # The UAS listens on UDP only (the lab's trunks are UDP): no TCP for SIPp alone.
        [[ $name == sipp && $tr == tcp ]] && continue
        run_steps "$name" "$tr"
    done
    fi
    [[ -n $proxy_pid ]] && stop "$proxy_pid"
    for p in "${pids[@]}"; do stop "$p"; done
    pids=(); proxy_pid=
done
done

# Per round: each proxy's highest clean rate and CPU per call there, and ils-edge's ratios to
# each Kamailio of the same round (a comparison within one run). With several rounds, then the
# medians.
log "$(python3 - "$best" "$TRANSPORTS" "$PROXIES" <<'PY'
import math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
transports, proxies = sys.argv[2].split(), sys.argv[3].split()
num = lambda x: math.nan if x in ("nan", "-", "") else float(x)
res = {(int(r), n, t): (num(rate), num(cpu)) for r, n, t, rate, cpu in rows}
rounds = sorted({k[0] for k in res})
def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan
out = ["# summary: highest clean rate (calls/s) and CPU per call there (us)"]
for tr in transports:
    ratios = {}
    for r in rounds:
        tag = f" round={r}" if len(rounds) > 1 else ""
        for n in proxies:
            if (r, n, tr) in res:
                rate, cpu = res[(r, n, tr)]
                out.append(f"{n:<8} {tr:<3} highest_clean={rate:.0f} cpu_us_per_call={cpu:.0f}{tag}".replace("=nan", "=-"))
        for k in ("kamailio", "kamailio-qm"):
            if (r, "ils-edge", tr) in res and (r, k, tr) in res:
                (er, ec), (kr, kc) = res[(r, "ils-edge", tr)], res[(r, k, tr)]
                rr = er / kr if kr else math.nan
                cr = ec / kc if kc else math.nan
                ratios.setdefault(k, []).append((rr, cr))
                out.append(f"ratio    {tr} clean_rate ils-edge/{k}={rr:.2f} (goal >= 2) cpu_per_call ils-edge/{k}={cr:.2f} (goal <= 0.5){tag}")
    if len(rounds) > 1:
        for n in proxies:
            got = [res[(r, n, tr)] for r in rounds if (r, n, tr) in res]
            if got:
                out.append(f"median   {tr} {n} highest_clean={med([g[0] for g in got]):.0f} cpu_us_per_call={med([g[1] for g in got]):.0f} over {len(got)} rounds".replace("=nan", "=-"))
        for k, rs in ratios.items():
            rs = [x for x in rs if not math.isnan(x[0])]
            if rs:
                out.append(f"median   {tr} ratio clean_rate ils-edge/{k}={med([x[0] for x in rs]):.2f} cpu_per_call ils-edge/{k}={med([x[1] for x in rs]):.2f} over {len(rs)} rounds")
print("\n".join(out))
PY
)"
