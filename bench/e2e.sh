#!/usr/bin/env bash
# End-to-end benchmark: TunStack over a TUN device against the Linux kernel's TCP over a veth pair, measured in
# the same run, by the same clients, in the same network namespace. Run through ./run-linux.sh bench e2e, which
# builds tunstack and passes DOTNET (the dotnet executable) and TUNSTACK_DLL (tunstack.dll) in the environment, and
# TUNSTACK_EXE (the NativeAOT tunstack) unless --jit: then both servers run that executable.
#
#   client namespace (curl, wrk, ab)
#     tun0  198.18.0.1/24   <-> tunstack (the stack)             answering as 198.18.0.2
#     veth0 198.18.1.1/24   <-> veth1 198.18.1.2/24 in the server namespace, where
#                               tunstack kernel-reference serves the same HTTP code over kernel sockets
#
# Each workload runs --runs times, alternating stack and kernel; the table reports medians.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo ./run-linux.sh bench e2e [options]

Measures TunStack (over tun0) and the Linux kernel (over a veth pair, same HTTP service code) with the same
clients in the same run, at each MTU, and prints a markdown table of medians with the ratio stack/kernel.

Options:
  --runs N        repetitions of every workload, stack and kernel alternating (default 3; 1 with --quick)
  --quick         small sizes for a smoke test: 64 MiB transfers, wrk 3 s, ab 2000 requests, 10 MiB under loss
  --loss PCT      also transfer 100 MiB each way with PCT% of TCP packets dropped (nftables in the client
                  namespace, input and output; GSO/TSO/GRO off so that one drop is one segment). PCT may
                  have two decimals (0.5).
  --mtu LIST      comma-separated MTUs for tun0 and the veth pair (default 1500,65520)
  --timeout SEC   limit for each transfer and load run (default 120; 60 with --quick); a run that hits it
                  is reported as "timeout"
  --stack-args A  more tunstack arguments, e.g. "--queues 2" (tun0 is then made multi-queue) or "--offload off"
  --jit           run both servers as the JIT build (dotnet tunstack.dll) instead of the NativeAOT executable
  --keep-logs     keep the working directory (server logs, client outputs) and print its path
  -h, --help      this text

Workloads, per MTU:
  download   curl -o /dev/null http://ADDR/bytes/N                  (MB/s; the byte count is checked)
  upload     curl -T FILE -X POST http://ADDR/sha256                (MB/s; the returned SHA-256 is checked)
  wrk        wrk -t2 -c50 -d10s http://ADDR/                        (requests/s; errors summed over runs)
  ab         ab -n 10000 -c 20 http://ADDR/  (new connection each)  (connections/s; failures summed)
  memory     VmHWM of each server process over the MTU's workloads  (MiB)
EOF
}

# ---------------------------------------------------------------------------------------------------------------
# Options

RUNS=""
QUICK=0
LOSS=""
MTUS="1500,65520"
TIMEOUT=""
KEEP_LOGS=0
STACK_ARGS=""
while (($# > 0)); do
    case "$1" in
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --quick) QUICK=1; shift ;;
        --loss) LOSS=${2:?--loss needs a percentage}; shift 2 ;;
        --loss=*) LOSS=${1#*=}; shift ;;
        --mtu) MTUS=${2:?--mtu needs a list}; shift 2 ;;
        --mtu=*) MTUS=${1#*=}; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --keep-logs) KEEP_LOGS=1; shift ;;
        --jit) shift ;; # handled by run-linux.sh, which then passes no TUNSTACK_EXE
        --stack-args) STACK_ARGS=${2?--stack-args needs arguments}; shift 2 ;;
        --stack-args=*) STACK_ARGS=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'bench e2e: unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
done

die() {
    printf 'bench e2e: %s\n' "$*" >&2
    exit 1
}
log() { printf 'bench e2e: %s\n' "$*" >&2; }

if ((QUICK)); then
    : "${RUNS:=1}" "${TIMEOUT:=60}"
    TRANSFER_BYTES=$((64 << 20))
    LOSS_BYTES=$((10 << 20))
    WRK_SECONDS=3
    AB_REQUESTS=2000
else
    : "${RUNS:=3}" "${TIMEOUT:=120}"
    TRANSFER_BYTES=$((1 << 30))
    LOSS_BYTES=$((100 << 20))
    WRK_SECONDS=10
    AB_REQUESTS=10000
fi
WRK_THREADS=2
WRK_CONNECTIONS=50
AB_CONCURRENCY=20

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$TIMEOUT'"
IFS=, read -r -a MTU_LIST <<<"$MTUS"
for mtu in "${MTU_LIST[@]}"; do
    [[ $mtu =~ ^[0-9]+$ ]] && ((mtu >= 576 && mtu <= 65535)) || die "each --mtu must be 576..65535, got '$mtu'"
done
LOSS_BASIS_POINTS=""
if [[ -n $LOSS ]]; then
    [[ $LOSS =~ ^[0-9]+(\.[0-9]{1,2})?$ ]] || die "--loss must be a percentage like 1 or 0.5, got '$LOSS'"
    LOSS_BASIS_POINTS=$(awk -v p="$LOSS" 'BEGIN { printf "%d", p * 100 + 0.5 }')
    ((LOSS_BASIS_POINTS > 0 && LOSS_BASIS_POINTS < 10000)) || die "--loss must be above 0 and below 100"
fi

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, TUN, nftables): sudo ./run-linux.sh bench e2e"
[[ -n ${DOTNET:-} && -x $DOTNET ]] || die "DOTNET is not set to the dotnet executable; run through ./run-linux.sh bench e2e"
[[ -n ${TUNSTACK_DLL:-} && -f $TUNSTACK_DLL ]] || die "TUNSTACK_DLL is not set to tunstack.dll; run through ./run-linux.sh bench e2e"
# Both servers, the stack and the kernel reference, are the same program: NativeAOT when it was published, else JIT.
if [[ -n ${TUNSTACK_EXE:-} ]]; then
    [[ -x $TUNSTACK_EXE ]] || die "TUNSTACK_EXE ($TUNSTACK_EXE) is not an executable"
    TUNSTACK_CMD=("$TUNSTACK_EXE")
    BUILD_KIND="NativeAOT"
else
    TUNSTACK_CMD=("$DOTNET" "$TUNSTACK_DLL")
    BUILD_KIND="JIT"
fi
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing: modprobe tun"

# ---------------------------------------------------------------------------------------------------------------
# Tools

install_packages() {
    local -a need=()
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    if [[ -n $LOSS ]]; then
        command -v nft >/dev/null 2>&1 || need+=(nftables)
        command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
    fi
    ((${#need[@]} > 0)) || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and apt-get is not available: install them by hand"
    log "installing ${need[*]}"
    apt-get update -qq </dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null ||
        die "apt-get install ${need[*]} failed"
}
install_packages

# ---------------------------------------------------------------------------------------------------------------
# Namespaces, servers and cleanup

RUN_ID="tsbench$$"
NS_CLIENT="$RUN_ID-client"
NS_SERVER="$RUN_ID-kernel"
TUN=tun0
TUN_KERNEL_CIDR=198.18.0.1/24
STACK_ADDR=198.18.0.2
VETH_CLIENT=veth0
VETH_SERVER=veth1
VETH_CLIENT_CIDR=198.18.1.1/24
VETH_SERVER_CIDR=198.18.1.2/24
KERNEL_ADDR=198.18.1.2

WORK=""
BODY_DIR=""
STACK_PID=""
KERNEL_PID=""
CLIENT_PID=""

# True while the process runs; an exited child that is not yet reaped (a zombie) does not count.
is_running() {
    local state
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# SIGTERM, up to 10 s to exit, then SIGKILL; reaps the child.
stop_process() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        is_running "$pid" || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

namespace_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

remove_namespaces() {
    if namespace_exists "$NS_CLIENT"; then
        ip -n "$NS_CLIENT" link del "$TUN" 2>/dev/null || true
        ip netns del "$NS_CLIENT" 2>/dev/null || true
    fi
    if namespace_exists "$NS_SERVER"; then
        ip netns del "$NS_SERVER" 2>/dev/null || true
    fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_process "$CLIENT_PID"
    stop_process "$STACK_PID"
    stop_process "$KERNEL_PID"
    CLIENT_PID="" STACK_PID="" KERNEL_PID=""
    remove_namespaces
    [[ -z $BODY_DIR ]] || rm -rf "$BODY_DIR"
    if [[ -z $WORK ]]; then
        :
    elif ((KEEP_LOGS)); then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tunstack-e2e.XXXXXX")
# Upload bodies live in RAM when /dev/shm exists, so reading them costs the client no disk I/O.
BODY_DIR=$(mktemp -d "$([[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo "$WORK")/tunstack-e2e-body.XXXXXX")

setup_namespaces() {
    local mtu=$1
    remove_namespaces
    ip netns add "$NS_CLIENT"
    ip netns add "$NS_SERVER"
    ip -n "$NS_CLIENT" link set lo up
    ip -n "$NS_SERVER" link set lo up

    # With --queues the device must be multi-queue (a single-queue device keeps one queue).
    if [[ " $STACK_ARGS " == *" --queues "* ]]; then
        ip -n "$NS_CLIENT" tuntap add dev "$TUN" mode tun multi_queue
    else
        ip -n "$NS_CLIENT" tuntap add dev "$TUN" mode tun
    fi
    ip -n "$NS_CLIENT" addr add "$TUN_KERNEL_CIDR" dev "$TUN"
    ip -n "$NS_CLIENT" link set "$TUN" mtu "$mtu" up

    ip -n "$NS_CLIENT" link add "$VETH_CLIENT" type veth peer name "$VETH_SERVER" netns "$NS_SERVER"
    ip -n "$NS_CLIENT" addr add "$VETH_CLIENT_CIDR" dev "$VETH_CLIENT"
    ip -n "$NS_SERVER" addr add "$VETH_SERVER_CIDR" dev "$VETH_SERVER"
    ip -n "$NS_CLIENT" link set "$VETH_CLIENT" mtu "$mtu" up
    ip -n "$NS_SERVER" link set "$VETH_SERVER" mtu "$mtu" up
}

# Starts tunstack with the given arguments in a namespace, in the background (a child of this script, so its PID
# is ours to stop), and waits up to 60 s for its ready line. Sets the variable named $1 to the PID.
start_server() {
    local -n pid_variable=$1
    local namespace=$2 ready=$3 logfile=$4 i
    shift 4
    ip netns exec "$namespace" "${TUNSTACK_CMD[@]}" "$@" >"$logfile" 2>&1 &
    pid_variable=$!
    for ((i = 0; i < 600; i++)); do
        grep -q "$ready" "$logfile" 2>/dev/null && return 0
        is_running "$pid_variable" || break
        sleep 0.1
    done
    log "'tunstack $*' did not become ready; its output:"
    sed 's/^/    /' "$logfile" >&2
    return 1
}

start_servers() {
    local mtu=$1
    start_server STACK_PID "$NS_CLIENT" "tunstack ready" "$WORK/stack-$mtu.log" \
        --tun "$TUN" --address "$STACK_ADDR" --mtu "$mtu" $STACK_ARGS || die "tunstack failed to start"
    start_server KERNEL_PID "$NS_SERVER" "kernel-reference ready" "$WORK/kernel-$mtu.log" \
        kernel-reference --address "$KERNEL_ADDR" || die "the kernel reference server failed to start"
}

stop_servers() {
    stop_process "$STACK_PID"
    stop_process "$KERNEL_PID"
    STACK_PID="" KERNEL_PID=""
}

# Peak resident set size of a process in MiB (VmHWM), or "gone".
peak_rss_mib() {
    local kib
    kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true)
    if [[ -n $kib ]]; then awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }'; else printf 'gone'; fi
}

# Runs a client command in the client namespace with a time limit, as a background child that the traps can
# stop, with stdout and stderr in files. Returns the command's status (124 after the time limit). Measurements
# call it from this shell, never from a $(...) subshell, so that CLIENT_PID is what the traps see.
run_client() {
    local limit=$1 out=$2 err=$3 status=0
    shift 3
    timeout -k 5 "$limit" ip netns exec "$NS_CLIENT" "$@" >"$out" 2>"$err" </dev/null &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || status=$?
    CLIENT_PID=""
    return "$status"
}

# ---------------------------------------------------------------------------------------------------------------
# Upload bodies: 1 MiB of random bytes repeated, so that misplaced data changes the hash.

declare -A BODY_HASH=()

# Makes the body of $1 bytes if it does not exist yet; its SHA-256 goes to BODY_HASH[$1].
make_body() {
    local bytes=$1 file="$BODY_DIR/body-$1" i
    [[ -f $file ]] && return 0
    [[ -f $BODY_DIR/block ]] || head -c $((1 << 20)) /dev/urandom >"$BODY_DIR/block"
    for ((i = 0; i < bytes >> 20; i++)); do cat "$BODY_DIR/block"; done >"$file"
    head -c $((bytes & ((1 << 20) - 1))) "$BODY_DIR/block" >>"$file"
    BODY_HASH[$bytes]=$(sha256sum "$file" | awk '{print $1}')
}

body_file() { printf '%s\n' "$BODY_DIR/body-$1"; }

# ---------------------------------------------------------------------------------------------------------------
# One measurement each. They set MEASURED to a number (two for wrk and ab), or to one word per number saying
# why there is none: timeout, error, short, http-NNN, bad-hash, down.

MEASURED=""

declare -A DOWN_REPORTED=()

# Says once per server and MTU that the server process has exited, with the end of its output.
report_down() {
    local impl=$1 mtu=$2
    [[ -z ${DOWN_REPORTED[$impl$mtu]:-} ]] || return 0
    DOWN_REPORTED[$impl$mtu]=1
    log "the $impl server has exited; the end of its output:"
    tail -n 20 "$WORK/$impl-$mtu.log" | sed 's/^/    /' >&2
}

server_up() {
    local pid
    [[ $1 == stack ]] && pid=$STACK_PID || pid=$KERNEL_PID
    [[ -n $pid ]] && is_running "$pid"
}

measure_download() {
    local addr=$1 bytes=$2 out="$WORK/curl.out" err="$WORK/curl.err" status=0
    run_client $((TIMEOUT + 10)) "$out" "$err" curl -sS --max-time "$TIMEOUT" -o /dev/null \
        -w '%{http_code} %{size_download} %{time_total}\n' "http://$addr/bytes/$bytes" || status=$?
    MEASURED=$(transfer_result "$status" "$out" "$bytes")
}

measure_upload() {
    local addr=$1 bytes=$2 out="$WORK/curl.out" err="$WORK/curl.err" response="$WORK/curl.body" status=0
    make_body "$bytes"
    # -T FILE sends Content-Length (no chunked coding); no "Expect: 100-continue" round trip.
    run_client $((TIMEOUT + 10)) "$out" "$err" curl -sS --max-time "$TIMEOUT" -X POST -H 'Expect:' \
        -T "$(body_file "$bytes")" -o "$response" -w '%{http_code} %{size_upload} %{time_total}\n' \
        "http://$addr/sha256" || status=$?
    MEASURED=$(transfer_result "$status" "$out" "$bytes")
    # The answer is the body's SHA-256 in lowercase hex and a newline ($(...) drops the newline).
    if [[ $MEASURED =~ ^[0-9] && $(cat "$response" 2>/dev/null) != "${BODY_HASH[$bytes]}" ]]; then
        MEASURED=bad-hash
    fi
}

# From curl's exit status and "-w" line (code, size, seconds): MB/s, or why not.
transfer_result() {
    local status=$1 out=$2 bytes=$3 code size seconds
    read -r code size seconds <"$out" 2>/dev/null || true
    if ((status == 28 || status == 124 || status == 137)); then
        echo timeout
    elif ((status != 0)); then
        echo error
    elif [[ $code != 200 ]]; then
        echo "http-${code:-none}"
    elif [[ $size != "$bytes" ]]; then
        echo short
    else
        awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.1f\n", b / s / 1e6 }'
    fi
}

# wrk: "requests/s errors".
measure_wrk() {
    local addr=$1 out="$WORK/wrk.out" err="$WORK/wrk.err" status=0
    run_client $((WRK_SECONDS + TIMEOUT)) "$out" "$err" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" \
        -d"${WRK_SECONDS}s" --timeout 5s "http://$addr/" || status=$?
    if ((status == 124 || status == 137)); then
        MEASURED="timeout timeout"
        return
    fi
    MEASURED=$(awk -v status="$status" '
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        END { if (status != 0 || rps == "") print "error error"; else printf "%.0f %d\n", rps, errors }' "$out")
}

# ab: "connections/s failed" (-r: a reset counts as a failed request instead of ending the run).
measure_ab() {
    local addr=$1 out="$WORK/ab.out" err="$WORK/ab.err" status=0
    run_client "$TIMEOUT" "$out" "$err" ab -q -r -s 10 -n "$AB_REQUESTS" -c "$AB_CONCURRENCY" "http://$addr/" || status=$?
    if ((status == 124 || status == 137)); then
        MEASURED="timeout timeout"
        return
    fi
    MEASURED=$(awk -v status="$status" -v n="$AB_REQUESTS" '
        /^Complete requests:/ { done = $3 }
        /^Failed requests:/ { failed = $3 }
        /^Requests per second:/ { rps = $4 }
        END {
            if (status != 0 || rps == "") { print "error error"; exit }
            printf "%.0f %d\n", rps, failed + (n - done)
        }' "$out")
}

# Warm-up: a few requests of every kind, so the first measured run does not pay for JIT compilation.
WARM_UP_BODY=$((1 << 20))
warm_up() {
    local addr=$1 i
    for ((i = 0; i < 3; i++)); do
        run_client 20 /dev/null /dev/null curl -sS --max-time 15 -o /dev/null "http://$addr/" || true
        run_client 20 /dev/null /dev/null curl -sS --max-time 15 -o /dev/null "http://$addr/bytes/$((16 << 20))" || true
        run_client 20 /dev/null /dev/null curl -sS --max-time 15 -X POST -H 'Expect:' -T "$(body_file "$WARM_UP_BODY")" \
            -o /dev/null "http://$addr/sha256" || true
    done
    run_client 20 /dev/null /dev/null ab -q -r -s 5 -n 200 -c 4 "http://$addr/" || true
}

# ---------------------------------------------------------------------------------------------------------------
# Results: RESULT[mtu|row|impl] is a space-separated list, one entry per run. ROWS keeps the order of rows.

declare -A RESULT=() ROW_UNIT=() ROW_KIND=()
declare -a ROWS=()

record() {
    local mtu=$1 row=$2 impl=$3 value=$4 key="$1|$2"
    if [[ -z ${ROW_UNIT[$key]+set} ]]; then
        ROWS+=("$key")
        ROW_UNIT[$key]=$5
        ROW_KIND[$key]=$6 # median or sum
    fi
    RESULT[$key|$impl]="${RESULT[$key|$impl]:-}${RESULT[$key|$impl]:+ }$value"
}

# Runs measurement function $2 for both servers, alternating, --runs times; $3.. are its arguments after ADDR.
# Each measurement prints one or two fields; the rows named in ROW_SPECS receive them in order.
compare() {
    local mtu=$1 title=$2 fn=$3
    shift 3
    local -a specs=("${ROW_SPECS[@]}") fields
    local run impl addr i row unit kind
    for ((run = 1; run <= RUNS; run++)); do
        for impl in stack kernel; do
            [[ $impl == stack ]] && addr=$STACK_ADDR || addr=$KERNEL_ADDR
            if server_up "$impl"; then
                "$fn" "$addr" "$@"
            else
                report_down "$impl" "$mtu"
                MEASURED="down down"
            fi
            read -r -a fields <<<"$MEASURED"
            for i in "${!specs[@]}"; do
                IFS='|' read -r row unit kind <<<"${specs[$i]}"
                record "$mtu" "$row" "$impl" "${fields[$i]:-error}" "$unit" "$kind"
            done
            log "mtu $mtu  $title  run $run/$RUNS  $impl: $MEASURED"
        done
    done
}

size_label() {
    local bytes=$1
    if ((bytes % (1 << 30) == 0)); then echo "$((bytes >> 30)) GiB"; else echo "$((bytes >> 20)) MiB"; fi
}

run_mtu() {
    local mtu=$1 transfer loss_transfer
    transfer=$(size_label "$TRANSFER_BYTES")
    loss_transfer=$(size_label "$LOSS_BYTES")
    log "mtu $mtu: namespaces $NS_CLIENT and $NS_SERVER"
    setup_namespaces "$mtu"
    start_servers "$mtu"
    make_body "$WARM_UP_BODY"
    make_body "$TRANSFER_BYTES"
    [[ -z $LOSS ]] || make_body "$LOSS_BYTES"
    log "mtu $mtu: warming up"
    warm_up "$STACK_ADDR"
    warm_up "$KERNEL_ADDR"

    ROW_SPECS=("download $transfer (curl)|MB/s|median")
    compare "$mtu" download measure_download "$TRANSFER_BYTES"
    ROW_SPECS=("upload $transfer, SHA-256 checked (curl POST /sha256)|MB/s|median")
    compare "$mtu" upload measure_upload "$TRANSFER_BYTES"
    ROW_SPECS=("wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_SECONDS}s /|requests/s|median"
        "wrk errors (socket errors + non-2xx), all runs|count|sum")
    compare "$mtu" wrk measure_wrk
    ROW_SPECS=("ab -n $AB_REQUESTS -c $AB_CONCURRENCY / (new connection per request)|connections/s|median"
        "ab failed requests, all runs|count|sum")
    compare "$mtu" ab measure_ab

    if [[ -n $LOSS ]]; then
        enable_loss
        ROW_SPECS=("download $loss_transfer, $LOSS% loss|MB/s|median")
        compare "$mtu" "download with loss" measure_download "$LOSS_BYTES"
        ROW_SPECS=("upload $loss_transfer, $LOSS% loss, SHA-256 checked|MB/s|median")
        compare "$mtu" "upload with loss" measure_upload "$LOSS_BYTES"
        report_loss
    fi

    record "$mtu" "peak resident memory of the server (VmHWM)" stack "$(peak_rss_mib "$STACK_PID")" MiB median
    record "$mtu" "peak resident memory of the server (VmHWM)" kernel "$(peak_rss_mib "$KERNEL_PID")" MiB median
    stop_servers
    remove_namespaces
}

# Drops LOSS% of TCP packets in the client namespace, both directions, for both servers' traffic; with
# segmentation and receive offloads off on tun0 and the veth pair, every dropped packet is one TCP segment.
enable_loss() {
    local dev feature
    for dev in "$NS_CLIENT:$TUN" "$NS_CLIENT:$VETH_CLIENT" "$NS_SERVER:$VETH_SERVER"; do
        for feature in tso gso gro; do
            ip netns exec "${dev%%:*}" ethtool -K "${dev#*:}" "$feature" off 2>/dev/null || true
        done
        if ip netns exec "${dev%%:*}" ethtool -k "${dev#*:}" |
            grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' | grep -q ': on'; then
            log "warning: could not turn every offload off on ${dev#*:}:"
            ip netns exec "${dev%%:*}" ethtool -k "${dev#*:}" |
                grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' >&2
        fi
    done
    ip netns exec "$NS_CLIENT" nft -f - <<EOF
table inet tunstack_e2e_loss {
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto tcp numgen random mod 10000 < $LOSS_BASIS_POINTS counter drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        meta l4proto tcp numgen random mod 10000 < $LOSS_BASIS_POINTS counter drop
    }
}
EOF
    log "dropping $LOSS% of TCP packets in $NS_CLIENT (input and output); offloads off"
}

report_loss() {
    local counts
    counts=$(ip netns exec "$NS_CLIENT" nft list table inet tunstack_e2e_loss |
        awk '/counter/ { for (i = 1; i <= NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }')
    log "nftables dropped $counts packets"
    ip netns exec "$NS_CLIENT" nft delete table inet tunstack_e2e_loss
}

# ---------------------------------------------------------------------------------------------------------------
# The table

# Median of the numeric entries of a list; failures are counted and named beside it.
summarize() {
    local kind=$1
    shift
    printf '%s\n' "$@" | awk -v kind="$kind" '
        /^[0-9]+(\.[0-9]+)?$/ { v[++n] = $1 + 0; next }
        { bad[$1]++; nbad++ }
        END {
            if (n > 0) {
                if (kind == "sum") { for (i = 1; i <= n; i++) s += v[i]; out = s }
                else {
                    for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
                    m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
                    out = (m >= 100) ? sprintf("%.0f", m) : sprintf("%.1f", m)
                }
            }
            words = ""
            for (w in bad) words = words (words == "" ? "" : ", ") (n > 0 || bad[w] < nbad || nbad > 1 ? bad[w] "× " : "") w
            if (n == 0) print words
            else if (nbad > 0) print out " (" words ")"
            else print out
        }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) { print "–"; exit }
        printf "%.2f\n", a / b }'
}

dotnet_runtime_version() {
    "$DOTNET" --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }'
}

print_table() {
    local cpu cores memory
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
    cores=$(nproc)
    memory=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    printf '\n'
    printf '### TunStack over TUN vs the Linux kernel over veth, end to end\n\n'
    printf -- '- Machine: %s, %s cores, %s; kernel %s; .NET %s (%s build of both servers)\n' "${cpu:-unknown CPU}" \
        "$cores" "$memory" "$(uname -r)" "$(dotnet_runtime_version)" "$BUILD_KIND"
    printf -- '- Date: %s; command: ./run-linux.sh bench e2e %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$ARGS_TEXT"
    printf -- '- %s run(s) per figure, stack and kernel alternating; medians (sums for error counts); timeout %s s\n\n' \
        "$RUNS" "$TIMEOUT"
    printf '| MTU | Workload | Unit | TunStack | Linux | stack/kernel | runs: stack; kernel |\n'
    printf '|---:|---|---|---:|---:|---:|---|\n'
    local key mtu row unit kind stack kernel stack_cell kernel_cell r
    for key in "${ROWS[@]}"; do
        mtu=${key%%|*}
        row=${key#*|}
        unit=${ROW_UNIT[$key]}
        kind=${ROW_KIND[$key]}
        stack=${RESULT[$key|stack]:-}
        kernel=${RESULT[$key|kernel]:-}
        # shellcheck disable=SC2086 # the lists are split into their entries on purpose
        stack_cell=$(summarize "$kind" $stack)
        # shellcheck disable=SC2086
        kernel_cell=$(summarize "$kind" $kernel)
        if [[ $kind == sum ]]; then r="–"; else r=$(ratio "$stack_cell" "$kernel_cell"); fi
        printf '| %s | %s | %s | %s | %s | %s | %s; %s |\n' "$mtu" "$row" "$unit" "$stack_cell" "$kernel_cell" "$r" \
            "$stack" "$kernel"
    done
}

# ---------------------------------------------------------------------------------------------------------------

ARGS_TEXT="--runs $RUNS --timeout $TIMEOUT --mtu $MTUS"
((QUICK == 0)) || ARGS_TEXT+=" --quick"
[[ -z $LOSS ]] || ARGS_TEXT+=" --loss $LOSS"
[[ -z $STACK_ARGS ]] || ARGS_TEXT+=" --stack-args \"$STACK_ARGS\""
if [[ $BUILD_KIND == JIT ]]; then ARGS_TEXT+=" --jit"; fi
log "runs $RUNS, MTUs $MTUS, transfers $(size_label "$TRANSFER_BYTES")${LOSS:+, loss $LOSS% on $(size_label "$LOSS_BYTES")}, timeout ${TIMEOUT}s"
for mtu in "${MTU_LIST[@]}"; do
    run_mtu "$mtu"
done
print_table
