#!/usr/bin/env bash
# TunStack on Linux: run the stack on a TUN device inside its own network namespace, run the test suite,
# or run the benchmarks. See usage() below.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
cd "$ROOT"

NS=tunstack
DEV=tun0
PEER_CIDR=198.18.0.1/24
STACK_ADDR=198.18.0.2
PEER_CIDR6=2001:2::1/64
STACK_ADDR6=2001:2::2
RESULTS="$ROOT/artifacts/test-results"

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

usage() {
    cat <<'EOF'
Usage:
  sudo ./run-linux.sh [tunstack options...]
      Build (Release), create network namespace "tunstack" with tun0 = 198.18.0.1/24 and 2001:2::1/64, and
      run tunstack on tun0 as 198.18.0.2 and 2001:2::2 in the foreground. Ctrl-C stops it and removes tun0
      and the namespace. Then, from another terminal:  sudo ip netns exec tunstack curl http://198.18.0.2/
      Options go to tunstack, e.g. --trace, --explain, --mtu 9000, --pcap /tmp/tunstack.pcap (see --help).

  sudo ./run-linux.sh fetch [tunstack fetch options...] [URL]
      The client side: create namespace "tunstack" with tun0, start a kernel HTTP server there
      (python3 -m http.server on 198.18.0.1:8000 serving hello.txt and a 10 MiB file.bin), and run
      "tunstack fetch" through the stack's own active open (SYN-SENT). Without arguments it fetches
      hello.txt with --trace; without a URL (e.g. fetch --trace --explain) it fetches hello.txt.
      Everything it started is removed when it exits.

  ./run-linux.sh test
      Build TunStack.sln (Release) and run every test project. As root it first installs missing Debian
      packages the tests use and runs the integration tests (real TUN device, kernel as peer); without root
      those are skipped (with CI=true they fail instead). Then it packs the NuGet packages and checks them
      (tests/check-packages.sh: one more test). The last line is "N passed, M failed, K skipped".

  ./run-linux.sh publish
      Publish tunstack as a NativeAOT executable (no JIT: a fraction of the JIT build's memory) into
      artifacts/aot/tunstack; it takes the same options. As root it first installs clang and zlib1g-dev when
      missing. "test" publishes it too: the load tests (trait Category=Load) measure it.

  ./run-linux.sh bench [BenchmarkDotNet options...]
      Run the microbenchmarks: dotnet run -c Release --project bench/Stack.Benchmarks -- --filter '*' [options]

  sudo ./run-linux.sh bench e2e [--runs N] [--quick] [--loss PCT] [--mtu LIST] [--timeout SEC] [--keep-logs] [--jit]
                                [--stack-args "ARGS"]
      End to end, in one run: the stack over tun0 against the Linux kernel over a veth pair (the same HTTP code
      over kernel sockets), with curl (1 GiB down, 1 GiB up with SHA-256 check), wrk and ab from one client
      namespace, at MTU 1500 and 65520; prints a markdown table of medians and the ratio stack/kernel.
      ./run-linux.sh bench e2e --help explains the options and columns.

  sudo ./run-linux.sh fuzz [wire|engine] [--minutes N]
      Fuzz with AFL++ through SharpFuzz for N minutes (default 10) under nice -n 19: "wire" (the default) feeds
      the packet parsers, "engine" feeds segment sequences to the TCP state machine. Installs afl++ (Debian) and
      the SharpFuzz.CommandLine tool when missing, builds fuzz/Stack.Fuzz into artifacts/fuzz/TARGET/bin and
      instruments TunStack.Core.dll there, starts from fuzz/corpus/TARGET, and leaves AFL's output in
      artifacts/fuzz/TARGET/findings. New crashes and hangs are copied to fuzz/crashes/TARGET, where the replay
      test picks them up. Replay one with:
        dotnet artifacts/fuzz/TARGET/bin/TunStack.Fuzz.dll replay TARGET FILE   (TUNSTACK_FUZZ_TRACE=1 traces)

  ./run-linux.sh --help
      This text.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
    printf 'run-linux.sh: %s\n' "$*" >&2
    exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# The dotnet executable; sudo's secure_path often hides a per-user or /usr/share install, so look around.
find_dotnet() {
    local candidate home
    if candidate=$(command -v dotnet 2>/dev/null); then
        readlink -f "$candidate"
        return 0
    fi
    for candidate in "${DOTNET_ROOT:-/nonexistent}/dotnet" /usr/share/dotnet/dotnet /usr/lib/dotnet/dotnet \
        /usr/local/share/dotnet/dotnet "${HOME:-/nonexistent}/.dotnet/dotnet"; do
        if [[ -x $candidate ]]; then
            say "$candidate"
            return 0
        fi
    done
    if [[ -n ${SUDO_USER:-} ]]; then
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        if [[ -n $home && -x $home/.dotnet/dotnet ]]; then
            say "$home/.dotnet/dotnet"
            return 0
        fi
    fi
    return 1
}

# Under sudo, build as the invoking user when they own the tree, so bin/ and obj/ do not become root's.
as_invoker() {
    if is_root && [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]] && [[ $(stat -c %U "$ROOT") == "$SUDO_USER" ]]; then
        sudo -u "$SUDO_USER" -H -- "$@"
    else
        "$@"
    fi
}

namespace_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }

cleanup_namespace() {
    if namespace_exists; then
        ip -n "$NS" link del "$DEV" 2>/dev/null || true
        ip netns del "$NS" 2>/dev/null || true
        say "Removed $DEV and network namespace $NS."
    fi
}

# Everything the run and fetch commands need, or a list of what is missing.
check_run_requirements() {
    local -a missing=()
    local dotnet=""
    is_root || missing+=("root (namespaces and TUN devices need it): run  sudo ./run-linux.sh")
    [[ -c /dev/net/tun ]] || missing+=("/dev/net/tun: load the tun module (modprobe tun)")
    dotnet=$(find_dotnet) || missing+=("dotnet: install the .NET 10 SDK")
    command -v ip >/dev/null 2>&1 || missing+=("ip: apt-get install iproute2")
    command -v curl >/dev/null 2>&1 || missing+=("curl: apt-get install curl")
    if ((${#missing[@]} > 0)); then
        printf 'run-linux.sh: cannot start; missing:\n' >&2
        printf '  - %s\n' "${missing[@]}" >&2
        exit 1
    fi
    DOTNET=$dotnet
}

# Refuses a namespace $NS that another run still uses; removes one left over from a run that did not clean up.
ensure_namespace_free() {
    if namespace_exists; then
        local pids
        pids=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ' || true)
        if [[ -n ${pids// /} ]]; then
            die "namespace $NS is in use by process(es) $pids- is another run-linux.sh still running? Stop it first."
        fi
        say "Namespace $NS is left over from an earlier run that did not clean up: removing it."
        cleanup_namespace
    fi
}

# A fresh namespace $NS with tun0 made beforehand (so tunstack attaches to it) and its kernel side configured.
make_namespace() {
    ensure_namespace_free
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" tuntap add dev "$DEV" mode tun
    ip -n "$NS" addr add "$PEER_CIDR" dev "$DEV"
    [[ -z ${1:-} ]] || ip -n "$NS" link set "$DEV" mtu "$1"
    # IPv6 needs an MTU of 1280 (the kernel turns IPv6 off on a smaller link). nodad: the address is usable at
    # once; on a point-to-point TUN link there is no one to collide with and no neighbour discovery.
    IPV6=1
    if [[ -n ${1:-} ]] && (($1 < 1280)); then
        IPV6=0
    else
        ip -n "$NS" -6 addr add "$PEER_CIDR6" dev "$DEV" nodad
    fi
    ip -n "$NS" link set "$DEV" up
}

build_host() {
    say "Building src/TunHost (Release)..."
    as_invoker "$DOTNET" build -c Release src/TunHost --nologo -v quiet
    HOST_DLL=$(find "$ROOT/src/TunHost/bin/Release" -name tunstack.dll -print -quit 2>/dev/null || true)
    [[ -n $HOST_DLL ]] || die "build finished but src/TunHost/bin/Release/*/tunstack.dll is missing"
}

# The value of --mtu among tunstack's arguments, if any.
mtu_argument() {
    local arg previous="" mtu=""
    for arg in "$@"; do
        [[ $previous == --mtu ]] && mtu=$arg
        [[ $arg == --mtu=* ]] && mtu=${arg#--mtu=}
        previous=$arg
    done
    say "$mtu"
}

cmd_fetch() {
    check_run_requirements
    ensure_namespace_free
    command -v python3 >/dev/null 2>&1 || die "python3 is needed for the kernel HTTP server: apt-get install python3"
    build_host
    local www server_pid=""
    www=$(mktemp -d /tmp/tunstack-www.XXXXXX)
    cleanup_fetch() {
        [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true
        rm -rf "$www"
        cleanup_namespace
    }
    trap cleanup_fetch EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf 'hello from the kernel'"'"'s HTTP server\n' >"$www/hello.txt"
    head -c 10485760 /dev/urandom >"$www/file.bin"
    make_namespace "$(mtu_argument "$@")"
    ip netns exec "$NS" python3 -m http.server -b "${PEER_CIDR%/*}" 8000 --directory "$www" >/dev/null 2>&1 &
    server_pid=$!
    local i
    for i in $(seq 1 100); do
        ip netns exec "$NS" curl -s -o /dev/null -m 1 "http://${PEER_CIDR%/*}:8000/" && break
        sleep 0.1
    done
    (($# > 0)) || set -- --trace
    # No URL among the arguments (e.g. "fetch --trace --explain"): fetch hello.txt.
    local arg has_url=0
    for arg in "$@"; do if [[ $arg == http://* ]]; then has_url=1; fi; done
    ((has_url)) || set -- "$@" "http://${PEER_CIDR%/*}:8000/hello.txt"
    say "Kernel HTTP server on ${PEER_CIDR%/*}:8000 in namespace $NS (hello.txt, file.bin: 10 MiB, sha256 $(sha256sum "$www/file.bin" | cut -c1-16)...)."
    say "Running: tunstack fetch $*"
    local status=0
    ip netns exec "$NS" "$DOTNET" "$HOST_DLL" fetch --tun "$DEV" --address "$STACK_ADDR" "$@" || status=$?
    exit "$status"
}

cmd_run() {
    check_run_requirements
    ensure_namespace_free

    build_host

    trap cleanup_namespace EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    make_namespace "$(mtu_argument "$@")"

    local -a addresses=(--address "$STACK_ADDR")
    if ((IPV6)); then
        addresses+=(--address "$STACK_ADDR6")
        cat <<EOF

Namespace "$NS" is ready: $DEV is ${PEER_CIDR} and ${PEER_CIDR6} (the kernel's side); tunstack answers as
$STACK_ADDR and $STACK_ADDR6. From another terminal try:

    sudo ip netns exec $NS curl http://$STACK_ADDR/
    sudo ip netns exec $NS curl -6 'http://[$STACK_ADDR6]/'
    sudo ip netns exec $NS ping -6 -c 3 $STACK_ADDR6

Ctrl-C stops tunstack and removes $DEV and the namespace.

EOF
    else
        cat <<EOF

Namespace "$NS" is ready: $DEV is ${PEER_CIDR} (the kernel's side); tunstack answers as $STACK_ADDR.
No IPv6: it needs an MTU of 1280 or more. From another terminal try:

    sudo ip netns exec $NS curl http://$STACK_ADDR/

Ctrl-C stops tunstack and removes $DEV and the namespace.

EOF
    fi
    # An --address of the caller's replaces these (the option is repeatable, so they would add up).
    [[ " $* " != *" --address"* ]] || addresses=()
    local status=0
    ip netns exec "$NS" "$DOTNET" "$HOST_DLL" --tun "$DEV" "${addresses[@]}" "$@" || status=$?
    exit "$status"
}

package_installed() {
    command -v dpkg-query >/dev/null 2>&1 &&
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Debian packages the integration tests use, installed only when missing.
install_test_packages() {
    local -a need=()
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
    command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
    command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
    # The tests use OpenBSD nc's -N; another nc on PATH does not do.
    if command -v dpkg-query >/dev/null 2>&1; then
        package_installed netcat-openbsd || need+=(netcat-openbsd)
    else
        command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
    fi
    # The load tests: ApacheBench and nmap; clang and zlib for the NativeAOT host they measure.
    command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
    command -v nmap >/dev/null 2>&1 || need+=(nmap)
    need_aot_packages
    ((${#need[@]} > 0)) || return 0

    if ! is_root; then
        say "Not root: cannot install ${need[*]}; integration tests that use them will fail or skip."
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and apt-get is not available: install them by hand"
    say "Installing missing packages: ${need[*]}"
    apt-get update -qq </dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null ||
        die "apt-get install ${need[*]} failed"
}

# Adds to the caller's need array what the NativeAOT publish needs (the native linker and zlib).
need_aot_packages() {
    command -v clang >/dev/null 2>&1 || need+=(clang)
    if command -v dpkg-query >/dev/null 2>&1; then
        package_installed zlib1g-dev || need+=(zlib1g-dev)
    fi
}

AOT_DIR="$ROOT/artifacts/aot"

# dotnet publish of the tunstack host as a NativeAOT executable into $AOT_DIR (incremental). $2, when given, is
# as_invoker: publish as the user who built the tree, like the build that came before.
publish_aot() {
    local dotnet=$1 run=${2:-} rid
    case "$(uname -m)" in
        aarch64) rid=linux-arm64 ;;
        *) rid=linux-x64 ;;
    esac
    say "Publishing the NativeAOT tunstack ($rid) into $AOT_DIR..."
    $run "$dotnet" publish src/TunHost -c Release -r "$rid" -o "$AOT_DIR" --nologo -v quiet </dev/null
}

cmd_publish() {
    local dotnet
    dotnet=$(find_dotnet) || die "dotnet not found: install the .NET 10 SDK"
    local -a need=()
    need_aot_packages
    if ((${#need[@]} > 0)); then
        is_root || die "the NativeAOT publish needs ${need[*]}: run as root to install them, or apt-get install them"
        apt-get update -qq </dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null ||
            die "apt-get install ${need[*]} failed"
    fi
    publish_aot "$dotnet"
    say "$AOT_DIR/tunstack"
}

# Reads attribute $2 of the <Counters .../> element in trx file $1 (0 when absent).
trx_counter() {
    local value
    value=$(grep -o '<Counters [^>]*>' "$1" | head -n 1 | sed -n "s/.* $2=\"\([0-9]*\)\".*/\1/p")
    say "${value:-0}"
}

# Names every failed test in the trx files under $1 with the first lines of its message, so that the end
# of a long log says what failed.
list_failed_tests() {
    command -v python3 >/dev/null || return 0
    python3 - "$1" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in sorted(glob.glob(sys.argv[1] + "/*.trx")):
    for result in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult", ns):
        if result.get("outcome") in ("Passed", "NotExecuted"):
            continue
        print(f"FAILED {result.get('testName')} ({result.get('outcome')}, {result.get('duration')})")
        message = result.findtext("t:Output/t:ErrorInfo/t:Message", "", ns).strip().splitlines()
        for line in message[:12]:
            print("    " + line)
PY
}

cmd_test() {
    local dotnet
    dotnet=$(find_dotnet) || die "dotnet not found: install the .NET 10 SDK"
    if is_root; then
        install_test_packages
    else
        say "Not root: integration tests (real TUN device) will be skipped; with CI=true they fail instead."
    fi

    say "Building TunStack.sln (Release)..."
    "$dotnet" build TunStack.sln -c Release --nologo
    # The load tests measure the NativeAOT host; without TUNSTACK_AOT_HOST they would publish it themselves.
    if publish_aot "$dotnet"; then
        export TUNSTACK_AOT_HOST="$AOT_DIR/tunstack"
    else
        say "The NativeAOT publish failed; the load tests will fail."
    fi

    rm -rf "$RESULTS"
    mkdir -p "$RESULTS"
    local -a projects=(tests/*/*.csproj)
    local run_failures=0 project name status
    local passed=0 failed=0 skipped=0
    for project in "${projects[@]}"; do
        name=$(basename "$project" .csproj)
        say ""
        say "=== $name"
        status=0
        "$dotnet" test "$project" -c Release --no-build --nologo \
            --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" \
            --results-directory "$RESULTS" \
            --blame-hang-timeout 5min --blame-hang-dump-type none </dev/null || status=$?

        local trx="$RESULTS/$name.trx"
        if [[ ! -f $trx ]]; then
            say "$name: the test run failed to start or produced no results (exit $status)"
            run_failures=$((run_failures + 1))
            continue
        fi
        local p f e t a n total executed
        p=$(trx_counter "$trx" passed)
        f=$(trx_counter "$trx" failed)
        e=$(trx_counter "$trx" error)
        t=$(trx_counter "$trx" timeout)
        a=$(trx_counter "$trx" aborted)
        n=$(trx_counter "$trx" notExecuted)
        total=$(trx_counter "$trx" total)
        executed=$(trx_counter "$trx" executed)
        # xunit's skipped tests show up as total - executed rather than as notExecuted.
        ((total - executed > n)) && n=$((total - executed))
        passed=$((passed + p))
        failed=$((failed + f + e + t + a))
        skipped=$((skipped + n))
        if ((status != 0 && f + e + t + a == 0)); then
            say "$name: dotnet test exited $status without a failed test (crash or hang?); counting the run as failed"
            run_failures=$((run_failures + 1))
        fi
    done

    # The NuGet packages: made by dotnet pack, complete, and usable by a project that knows only them.
    say ""
    say "=== packages"
    if tests/check-packages.sh "$dotnet" "$ROOT/artifacts/package-check" </dev/null; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi

    failed=$((failed + run_failures))
    say ""
    say "Test results: $RESULTS"
    list_failed_tests "$RESULTS"
    say "$passed passed, $failed failed, $skipped skipped"
    ((failed == 0))
}

cmd_bench() {
    if [[ ${1:-} == e2e ]]; then
        shift
        cmd_bench_e2e "$@"
        return
    fi
    local dotnet
    dotnet=$(find_dotnet) || die "dotnet not found: install the .NET 10 SDK"
    local -a args=("$@")
    # Without a --filter of the caller's, run every benchmark.
    [[ " $* " == *" --filter"* ]] || args=(--filter '*' "${args[@]}")
    exec "$dotnet" run -c Release --project bench/Stack.Benchmarks -- "${args[@]}"
}

# The end-to-end comparison with the kernel (bench/e2e.sh), after building tunstack.
cmd_bench_e2e() {
    local arg
    for arg in "$@"; do
        [[ $arg == -h || $arg == --help ]] && exec bash "$ROOT/bench/e2e.sh" --help
    done
    is_root || die "bench e2e needs root (network namespaces, TUN, nftables): sudo ./run-linux.sh bench e2e"
    local dotnet dll
    dotnet=$(find_dotnet) || die "dotnet not found: install the .NET 10 SDK"
    # Build messages go to stderr: stdout is the table.
    say "Building src/TunHost (Release)..." >&2
    as_invoker "$dotnet" build -c Release src/TunHost --nologo -v quiet >&2
    dll=$(find "$ROOT/src/TunHost/bin/Release" -name tunstack.dll -print -quit 2>/dev/null || true)
    [[ -n $dll ]] || die "build finished but src/TunHost/bin/Release/*/tunstack.dll is missing"
    # Both servers run the NativeAOT tunstack unless --jit (e2e.sh reads TUNSTACK_EXE).
    local jit=0
    for arg in "$@"; do [[ $arg == --jit ]] && jit=1; done
    if ((jit == 0)); then
        local -a need=()
        need_aot_packages
        if ((${#need[@]} > 0)); then
            apt-get update -qq </dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${need[@]}" </dev/null >&2 || die "apt-get install ${need[*]} failed (or use --jit)"
        fi
        publish_aot "$dotnet" as_invoker >&2 || die "the NativeAOT publish failed (or use --jit)"
        export TUNSTACK_EXE="$AOT_DIR/tunstack"
    fi
    DOTNET="$dotnet" TUNSTACK_DLL="$dll" exec bash "$ROOT/bench/e2e.sh" "$@"
}

SHARPFUZZ_VERSION=2.3.0

# afl++ from Debian and the SharpFuzz instrumentation tool (a dotnet tool under artifacts/fuzz/tools).
install_fuzz_tools() {
    local dotnet=$1 tools=$2
    if ! command -v afl-fuzz >/dev/null 2>&1; then
        is_root || die "afl-fuzz is missing: run as root so it can be installed (apt-get install afl++)"
        command -v apt-get >/dev/null 2>&1 || die "afl-fuzz is missing and apt-get is not available: install AFL++ by hand"
        say "Installing afl++..."
        apt-get update -qq </dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends afl++ </dev/null ||
            die "apt-get install afl++ failed"
    fi
    if [[ ! -x $tools/sharpfuzz ]]; then
        say "Installing the SharpFuzz.CommandLine tool $SHARPFUZZ_VERSION into $tools..."
        "$dotnet" tool install SharpFuzz.CommandLine --version "$SHARPFUZZ_VERSION" --tool-path "$tools" >/dev/null ||
            die "dotnet tool install SharpFuzz.CommandLine failed"
    fi
}

cmd_fuzz() {
    local target=wire minutes=10
    while (($# > 0)); do
        case $1 in
            wire | engine) target=$1 ;;
            --minutes)
                shift
                [[ ${1:-} =~ ^[0-9]+$ && $1 -gt 0 ]] || die "--minutes needs a positive whole number"
                minutes=$1
                ;;
            *) die "fuzz: unknown argument '$1' (expected wire, engine or --minutes N)" ;;
        esac
        shift
    done
    local dotnet
    dotnet=$(find_dotnet) || die "dotnet not found: install the .NET 10 SDK"
    local work="$ROOT/artifacts/fuzz/$target"
    local tools="$ROOT/artifacts/fuzz/tools" bin="$work/bin" findings="$work/findings"
    local corpus="$ROOT/fuzz/corpus/$target" crashes="$ROOT/fuzz/crashes/$target"
    [[ -d $corpus ]] && [[ -n $(ls -A "$corpus") ]] || die "the seed corpus $corpus is missing or empty"
    install_fuzz_tools "$dotnet" "$tools"

    # A fresh build every time: instrumenting rewrites TunStack.Core.dll in place, and only once.
    say "Building fuzz/Stack.Fuzz into $bin and instrumenting TunStack.Core.dll..."
    rm -rf "$bin"
    "$dotnet" publish fuzz/Stack.Fuzz -c Release -o "$bin" --nologo -v quiet >/dev/null
    # The tool targets an older runtime than the SDK here; let it run on the newest one installed.
    DOTNET_ROLL_FORWARD=Major "$tools/sharpfuzz" "$bin/TunStack.Core.dll" TunStack >/dev/null ||
        die "sharpfuzz could not instrument $bin/TunStack.Core.dll"

    rm -rf "$findings"
    mkdir -p "$findings" "$crashes"
    say "Fuzzing '$target' for $minutes minute(s); AFL++ output in $findings"
    # -V: stop after the time; -t: per-run timeout (ms, the first runs include JIT warm-up); -m none: the .NET
    # runtime reserves far more address space than AFL's default limit. The target is a managed program started by
    # dotnet, so AFL cannot see instrumentation in the dotnet binary itself (AFL_SKIP_BIN_CHECK).
    local status=0
    AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_AUTORESUME=1 AFL_MAP_SIZE=65536 \
        nice -n 19 afl-fuzz -V $((minutes * 60)) -t 5000 -m none -i "$corpus" -o "$findings" \
        -- "$dotnet" "$bin/TunStack.Fuzz.dll" "$target" || status=$?

    local stats="$findings/default/fuzzer_stats"
    if [[ -f $stats ]]; then
        grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg) ' "$stats" || true
    fi
    local found=0 file
    for file in "$findings"/default/crashes/id:* "$findings"/default/hangs/id:*; do
        [[ -f $file ]] || continue
        cp "$file" "$crashes/$(basename "$(dirname "$file")")-$(sha256sum "$file" | cut -c1-12)"
        found=$((found + 1))
    done
    if ((found > 0)); then
        say "$found crash/hang input(s) copied to $crashes. Replay with:"
        say "  dotnet $bin/TunStack.Fuzz.dll replay $target $crashes"
    else
        say "No crashes or hangs."
    fi
    return "$status"
}

case "${1:-}" in
    -h | --help | help)
        usage
        ;;
    test)
        shift
        (($# == 0)) || die "'test' takes no arguments"
        cmd_test
        ;;
    publish)
        shift
        (($# == 0)) || die "'publish' takes no arguments"
        cmd_publish
        ;;
    bench)
        shift
        cmd_bench "$@"
        ;;
    fetch)
        shift
        cmd_fetch "$@"
        ;;
    fuzz)
        shift
        cmd_fuzz "$@"
        ;;
    *)
        cmd_run "$@"
        ;;
esac
