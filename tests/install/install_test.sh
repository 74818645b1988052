#!/usr/bin/env bash
# install_test — proves the install rules and the systemd unit on the
# current build, with no configure step of its own:
#   1. `cmake --install` puts exactly the programs, units, examples and docs
#      it should into a temporary prefix (no test or benchmark program), and
#      the installed programs run from there (no RPATH into the build tree);
#   2. the installed voucherd@.service names the installed voucherd, and
#      `systemd-analyze verify` accepts the instance voucherd@replica-a with
#      no warning at all (an unknown directive would be one), and
#      `systemd-analyze security --offline` rates its sandbox 1.4 (no worse),
#      and `systemctl --root=DIR enable` wires the instance and the target;
#   3. the installed voucherd, started as the unit starts it (the unit's
#      ExecStart with %i and %d expanded, the environment of its
#      EnvironmentFiles, here the installed examples for replica-a, the
#      credentials of its LoadCredential lines in a directory of their own)
#      on a redis-server of its own, becomes ready, accepts the admin token
#      of its tokens credential and refuses another, and on SIGTERM exits 0
#      well within the unit's TimeoutStopSec.
# Nothing is written outside a temporary directory: the install is staged
# under DESTDIR, and the prefix is a symlink into the stage.
#   install_test.sh CMAKE BUILD_DIR SOURCE_DIR VERSION BINDIR DATADIR DOCDIR UNITDIR
# (the last four as configured: relative to the prefix, or absolute).
set -euo pipefail
if [ $# -ne 8 ]; then
  echo "usage: install_test.sh CMAKE BUILD_DIR SOURCE_DIR VERSION BINDIR DATADIR DOCDIR UNITDIR" >&2
  exit 2
fi
CMAKE="$1"
BUILD="$2"
SRC="$3"
VERSION="$4"
INSTANCE=replica-a
PROGRAMS=(voucherd voucherctl voucher-audit voucher-load)

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

# wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it succeeds;
# fails after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# --- 1. The install -----------------------------------------------------------
step "cmake --install $BUILD"
prefix="$tmp/prefix"
stage="$tmp/stage"
DESTDIR="$stage" "$CMAKE" --install "$BUILD" --prefix "$prefix" >"$tmp/install.log"
ln -s "$stage$prefix" "$prefix"

# Where each kind of file goes, as the build was configured.
under_prefix() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$prefix/$1"; fi; }
bindir="$(under_prefix "$5")"
datadir="$(under_prefix "$6")"
docdir="$(under_prefix "$7")"
unitdir="$(under_prefix "$8")"
examples="$datadir/voucherd/examples"
# The same, where this test finds them (the prefix is also reachable
# through its symlink; a directory configured absolute only in the stage).
staged_bindir="$stage$bindir"
staged_examples="$stage$examples"
staged_unitdir="$stage$unitdir"

# Every installed file, against every file the rules should install: the
# programs, the two units, deploy/ (but its systemd/) as examples, README.md
# and docs/*.md. Anything else (a test, a benchmark, a library) is a failure.
{
  for p in "${PROGRAMS[@]}"; do echo "$bindir/$p"; done
  echo "$unitdir/voucherd@.service"
  echo "$unitdir/voucherd.target"
  (cd "$SRC/deploy" && find . -path ./systemd -prune -o -type f -print) |
    sed "s#^\./#$examples/#"
  echo "$docdir/README.md"
  for f in "$SRC"/docs/*.md; do echo "$docdir/$(basename "$f")"; done
} | sort >"$tmp/expected"
(cd "$stage" && find . -type f -o -type l) | sed 's#^\.##' | sort >"$tmp/installed"
if ! diff -u "$tmp/expected" "$tmp/installed" >"$tmp/files.diff"; then
  cat "$tmp/files.diff" >&2
  fail "installed files differ from the expected ones (- missing, + unexpected)"
fi
echo "installed $(wc -l <"$tmp/installed") files, as expected"

step "the installed programs run from the prefix"
for p in "${PROGRAMS[@]}"; do
  program="$staged_bindir/$p"
  [ -x "$program" ] || fail "$program is not executable"
  if readelf -d "$program" | grep -E 'R(UN)?PATH' | grep -qF "$BUILD"; then
    fail "$program has an RPATH into the build tree: $(readelf -d "$program" | grep -E 'R(UN)?PATH')"
  fi
  if ldd "$program" | grep -q 'not found'; then
    fail "$program misses shared libraries: $(ldd "$program" | grep 'not found')"
  fi
  "$program" --help >/dev/null || fail "$program --help failed"
done
version="$("$staged_bindir/voucherd" --version)"
[ "$version" = "voucherd $VERSION" ] ||
  fail "installed voucherd --version says \"$version\""
echo "$version"

# --- 2. The unit --------------------------------------------------------------
unit="$staged_unitdir/voucherd@.service"
# unit_values KEY: the values of KEY= lines of the installed unit, in order.
unit_values() { sed -n "s/^$1=//p" "$unit"; }
exec_start="$(unit_values ExecStart)"
[[ "$exec_start" == "$bindir/voucherd "* ]] ||
  fail "ExecStart does not name the installed voucherd: $exec_start"

step "systemd-analyze verify voucherd@$INSTANCE.service"
# verify loads the instance from the installed unit directory (the template
# gives it), and reports problems on stderr: it exits 1 for some (a program
# that is not executable), only warns for others (an unknown directive), so
# both the status and the output are checked.
verify_status=0
SYSTEMD_UNIT_PATH="$staged_unitdir:" systemd-analyze verify --man=no \
  "voucherd@$INSTANCE.service" "voucherd.target" >"$tmp/verify.out" 2>&1 || verify_status=$?
cat "$tmp/verify.out"
[ "$verify_status" -eq 0 ] || fail "systemd-analyze verify exited $verify_status"
[ ! -s "$tmp/verify.out" ] || fail "systemd-analyze verify printed warnings (above)"

step "systemctl --root enable voucherd.target voucherd@$INSTANCE.service"
# The [Install] sections, as docs/operations.md enables them, in a root of
# the test's own: the instance is wanted by the target, the target at boot.
sysroot="$tmp/sysroot"
mkdir -p "$sysroot/usr/lib/systemd/system" "$sysroot/etc/systemd/system"
cp "$unit" "$staged_unitdir/voucherd.target" "$sysroot/usr/lib/systemd/system/"
systemctl --root="$sysroot" enable voucherd.target "voucherd@$INSTANCE.service" >/dev/null 2>&1 ||
  fail "systemctl --root enable failed: $(systemctl --root="$sysroot" enable voucherd.target 2>&1)"
for link in multi-user.target.wants/voucherd.target "voucherd.target.wants/voucherd@$INSTANCE.service"; do
  [ -L "$sysroot/etc/systemd/system/$link" ] || fail "enabling made no $link"
done

step "systemd-analyze security --offline voucherd@$INSTANCE.service"
# The exposure score runs from 0 (sandboxed) to 10 (not at all); the unit
# rates 1.4. --threshold (in tenths) makes any score above that a failure:
# dropping DynamicUser= makes it 1.8, CapabilityBoundingSet= 3.2.
SYSTEMD_UNIT_PATH="$staged_unitdir:" systemd-analyze security --offline=true --threshold=14 \
  --no-pager "voucherd@$INSTANCE.service" >"$tmp/security.out" 2>&1 ||
  {
    cat "$tmp/security.out"
    fail "systemd-analyze security: exposure above 1.4"
  }
tail -n 1 "$tmp/security.out"

# --- 3. The installed voucherd, started as the unit starts it -------------------
step "voucherd@$INSTANCE as the unit starts it"
# The credentials: what LoadCredential= gives the service, in a directory
# of its own (systemd's would be /run/credentials/voucherd@replica-a.service).
credentials="$tmp/credentials"
mkdir -m 700 "$credentials"
app_token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
admin_token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
ops_token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
while IFS= read -r credential; do
  id="${credential%%:*}"
  case "$id" in
    secret.hex) od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$credentials/$id" ;;
    tokens)
      # As docs/operations.md makes it, with the installed voucherctl.
      {
        echo "$(printf '%s' "$app_token" | "$staged_bindir/voucherctl" hash-token) app"
        echo "$(printf '%s' "$admin_token" | "$staged_bindir/voucherctl" hash-token) admin"
      } >"$credentials/$id"
      ;;
    ops-tokens)
      echo "$(printf '%s' "$ops_token" | "$staged_bindir/voucherctl" hash-token) prometheus" \
        >"$credentials/$id"
      ;;
    *) fail "the unit loads a credential this test does not know how to make: $credential" ;;
  esac
  chmod 400 "$credentials/$id"
done < <(unit_values LoadCredential)
[ "$(grep -c '^sha256:[0-9a-f]\{64\} \(app\|admin\)$' "$credentials/tokens")" = 2 ] ||
  fail "voucherctl hash-token did not make the tokens lines: $(cat "$credentials/tokens")"

# The environment: the unit's EnvironmentFiles in order (a later one wins),
# read from the installed examples instead of /etc/voucherd.
declare -A env_vars=()
while IFS= read -r env_file; do
  [[ "$env_file" == /etc/voucherd/* ]] || fail "EnvironmentFile outside /etc/voucherd: $env_file"
  file="$staged_examples/etc/voucherd/${env_file#/etc/voucherd/}"
  file="${file//%i/$INSTANCE}"
  [ -f "$file" ] || fail "no example for EnvironmentFile=$env_file (looked for $file)"
  number=0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    [[ -z "$line" || "$line" == \#* || "$line" == \;* ]] && continue
    # Plain NAME=value lines only: systemd and this reading agree on them.
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([^\"\'\\\ ]*)$ ]] ||
      fail "$file:$number is not a plain NAME=value line: $line"
    env_vars["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"
  done <"$file"
done < <(unit_values EnvironmentFile)
echo "from the example env files: $(printf '%s ' "${!env_vars[@]}")"
[ "${env_vars[VOUCHERD_STORE]:-}" = redis ] || fail "the example voucherd.env does not use Redis"

# gone PID: the process has exited (a child not yet waited for is a zombie).
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(cut -d ' ' -f 3 "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# Its own redis-server on a free loopback port: redis-server exits when the
# port is taken, and then the next one is tried. The one that answers must
# be ours (its process id), not another test's on the same port.
redis_port=""
redis_answers() { redis-cli -p "$port" info server 2>/dev/null | grep -q "^process_id:$redis_pid"; }
redis_settled() { gone "$redis_pid" || redis_answers; }
for _ in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 10000))
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp" \
    >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  if wait_for 5 redis_settled && redis_answers; then
    redis_port="$port"
    break
  fi
  kill -KILL "$redis_pid" 2>/dev/null || true
done
[ -n "$redis_port" ] || fail "no redis-server started: $(cat "$tmp/redis.log")"
echo "redis-server on port $redis_port"

# What this test changes, every change in the environment (the command
# line stays the unit's): free loopback ports, reported in files; the test's
# Redis; and the installed sample campaign, opened now (--rehearse).
env_vars[VOUCHERD_LISTEN]=127.0.0.1:0
env_vars[VOUCHERD_OPS_LISTEN]=127.0.0.1:0
env_vars[VOUCHERD_PORT_FILE]="$tmp/grpc.port"
env_vars[VOUCHERD_OPS_PORT_FILE]="$tmp/ops.port"
env_vars[VOUCHERD_REDIS]="redis://127.0.0.1:$redis_port/0"
env_vars[VOUCHERD_CAMPAIGNS]="$staged_examples/campaigns/guangdong-2024.json"
env_vars[VOUCHERD_REHEARSE]=true
environment=(PATH=/usr/bin:/bin "CREDENTIALS_DIRECTORY=$credentials")
for name in "${!env_vars[@]}"; do environment+=("$name=${env_vars[$name]}"); done
# A sanitizer build's options (its suppressions) reach voucherd as they
# reach the other tests' processes.
for name in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
  [ -z "${!name:-}" ] || environment+=("$name=${!name}")
done

# ExecStart with the specifiers it uses expanded as systemd does; the line
# has no quoting, so splitting at spaces is systemd's splitting too.
command_line="${exec_start//%i/$INSTANCE}"
command_line="${command_line//%d/$credentials}"
[[ "$command_line" != *[%\$\"\'\\]* ]] ||
  fail "ExecStart uses what this test does not expand: $exec_start"
read -ra command <<<"$command_line"
echo "ExecStart: ${command[*]}"
# It runs under strace, which records every system call it makes, for the
# sandbox's checks below (systemd is not needed to run it). A sanitizer
# build is not what the unit runs in production, and its runtime traces
# threads itself (LeakSanitizer): it runs without strace, and part 4 is
# left out.
tracer=(strace -f -qq -o "$tmp/syscalls.trace")
[ -z "${VOUCHERD_SANITIZE:-}" ] || tracer=()
started=$SECONDS
env -i "${environment[@]}" "${tracer[@]}" "${command[@]}" \
  >"$tmp/voucherd.out" 2>"$tmp/voucherd.log" &
launched_pid=$! # strace's, or voucherd's own (env execs it)
pids+=("$launched_pid")
port_files_written() {
  ! gone "$launched_pid" || fail "voucherd exited: $(cat "$tmp/voucherd.log")"
  [ -s "$tmp/grpc.port" ] && [ -s "$tmp/ops.port" ]
}
wait_for 60 port_files_written || fail "voucherd did not listen within 60 s: $(cat "$tmp/voucherd.log")"
voucherd_pid="$launched_pid"
if ((${#tracer[@]} > 0)); then
  # The trace's first line is voucherd's execve, under voucherd's pid.
  voucherd_pid="$(head -n 1 "$tmp/syscalls.trace" | cut -d ' ' -f 1)"
fi
[ "$(cat "/proc/$voucherd_pid/comm")" = voucherd ] || fail "pid $voucherd_pid is not voucherd"
grpc_port="$(cat "$tmp/grpc.port")"
ops_port="$(cat "$tmp/ops.port")"

# http_status PATH: the status code of GET PATH on the ops port.
http_status() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$ops_port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
  reply="$(head -n 1 <&3)"
  exec 3<&-
  echo "$reply" | cut -d ' ' -f 2
}
ready() { [ "$(http_status /readyz)" = 200 ]; }
wait_for 10 ready || fail "/readyz is not 200: $(http_status /readyz); $(cat "$tmp/voucherd.log")"
echo "/readyz 200 after $((SECONDS - started)) s; gRPC on port $grpc_port"
grep -q '"auth":"tokens"' "$tmp/voucherd.log" ||
  fail "voucherd did not read the tokens credential: $(cat "$tmp/voucherd.log")"
# The ops-tokens credential is in force: past the probes, the ops port asks
# for a token.
[ "$(http_status /status)" = 401 ] ||
  fail "/status without a token is $(http_status /status), not 401 (--ops-auth-file not in force)"
grep -q '"msg":"ops auth: 1 tokens from ' "$tmp/voucherd.log" ||
  fail "voucherd did not read the ops-tokens credential: $(cat "$tmp/voucherd.log")"

# The tokens credential is the one in force: its admin token may export
# the (empty) settlement, another token may not.
VOUCHERCTL_TOKEN="$admin_token" "$staged_bindir/voucherctl" export-redemptions \
  --target "127.0.0.1:$grpc_port" --campaign guangdong-2024 --settlement "$tmp/settlement.csv" \
  >"$tmp/voucherctl.log" 2>&1 || fail "voucherctl with the admin token: $(cat "$tmp/voucherctl.log")"
grep -q '^ALL,ALL,0' "$tmp/settlement.csv" ||
  fail "unexpected settlement: $(cat "$tmp/settlement.csv")"
# voucherctl exits 1 when the server refuses; UNAUTHENTICATED's message:
refused_status=0
VOUCHERCTL_TOKEN="not-$admin_token" "$staged_bindir/voucherctl" export-redemptions \
  --target "127.0.0.1:$grpc_port" --campaign guangdong-2024 --settlement "$tmp/refused.csv" \
  >"$tmp/refused.log" 2>&1 || refused_status=$?
if [ "$refused_status" -ne 1 ] || ! grep -q 'unknown bearer token' "$tmp/refused.log"; then
  fail "an unknown token was not refused (exit $refused_status): $(cat "$tmp/refused.log")"
fi
echo "the admin token of the tokens credential is accepted, an unknown token refused"

# Some work, so that the claim path's system calls are in the record too:
# a small crowd claims with the app token, and every check of voucher-load
# passes (one pack per member, stock counted by the admin token).
"$staged_bindir/voucher-load" --target "127.0.0.1:$grpc_port" --campaign guangdong-2024 \
  --members 2000 --repeat-share 0.3 --threads 1 --concurrency 32 \
  --token "$app_token" --admin-token "$admin_token" >"$tmp/load.log" 2>&1 ||
  fail "voucher-load against the installed voucherd: $(tail -n 20 "$tmp/load.log")"
grep -q '^RESULT: OK' "$tmp/load.log" || fail "voucher-load: $(tail -n 20 "$tmp/load.log")"
echo "voucher-load: $(grep 'Vouchers issued' "$tmp/load.log" | tr -s ' ')"

# KillSignal, then at most TimeoutStopSec (whole seconds in the unit).
kill_signal="$(unit_values KillSignal)"
timeout_stop_s="$(unit_values TimeoutStopSec)"
[[ "$timeout_stop_s" =~ ^[0-9]+$ ]] || fail "TimeoutStopSec is not whole seconds: $timeout_stop_s"
stop_started_ms=$(date +%s%3N)
kill -s "${kill_signal#SIG}" "$voucherd_pid"
wait_for "$timeout_stop_s" gone "$voucherd_pid" ||
  fail "voucherd still runs $timeout_stop_s s after $kill_signal"
stop_ms=$(($(date +%s%3N) - stop_started_ms))
status=0
wait "$launched_pid" || status=$? # strace exits with its program's status
[ "$status" -eq 0 ] || fail "voucherd exited $status after $kill_signal: $(cat "$tmp/voucherd.log")"
grep -q '"msg":"stopped"' "$tmp/voucherd.log" || fail "voucherd did not log its stop"
echo "$kill_signal: voucherd exited 0 after $stop_ms ms (TimeoutStopSec=$timeout_stop_s s)"

# --- 4. The sandbox admits what voucherd did ------------------------------------
if ((${#tracer[@]} == 0)); then
  echo "PASS (sanitizer build, $VOUCHERD_SANITIZE: its system calls are not checked)"
  exit 0
fi
step "the unit's sandbox admits every system call of the run"
# systemd cannot run here, so the unit's filters are checked against what
# voucherd did from exec to exit: a system call outside them would fail
# with EPERM in production (or, for MemoryDenyWriteExecute, kill it).
# filter_calls SET...: the system calls of the named sets, groups expanded.
filter_calls() {
  local set line
  for set in "$@"; do
    systemd-analyze syscall-filter --no-pager "$set" | tail -n +2 | while read -r line; do
      case "$line" in
        "" | \#*) ;;
        @*) filter_calls "$line" ;;
        *) echo "$line" ;;
      esac
    done
  done
}
# A SystemCallFilter= line starting with ~ takes its sets away from what
# the other lines allow.
allow=()
deny=()
while read -r -a sets; do
  if [[ "${sets[0]}" == "~"* ]]; then
    sets[0]="${sets[0]#\~}"
    deny+=("${sets[@]}")
  else
    allow+=("${sets[@]}")
  fi
done < <(unit_values SystemCallFilter)
((${#allow[@]} > 0)) || fail "the unit has no SystemCallFilter allow list"
filter_calls "${allow[@]}" | sort -u >"$tmp/allowed"
filter_calls "${deny[@]}" | sort -u >"$tmp/denied"
sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$tmp/syscalls.trace" | sort -u >"$tmp/used"
[ -s "$tmp/used" ] || fail "strace recorded no system call"
outside="$(comm -23 "$tmp/used" <(comm -23 "$tmp/allowed" "$tmp/denied") | tr '\n' ' ')"
[ -z "$outside" ] || fail "voucherd used system calls the unit's SystemCallFilter refuses: $outside"
echo "$(wc -l <"$tmp/used") distinct system calls, all inside SystemCallFilter"
# MemoryDenyWriteExecute: no mapping both writable and executable, and no
# mapping made executable afterwards.
if grep -E '(mmap|mprotect|pkey_mprotect)\(.*PROT_WRITE\|PROT_EXEC' "$tmp/syscalls.trace" ||
  grep -E '(mprotect|pkey_mprotect)\(.*PROT_EXEC' "$tmp/syscalls.trace"; then
  fail "voucherd made memory executable as MemoryDenyWriteExecute refuses (above)"
fi
# RestrictAddressFamilies: every socket it opened is of a family it admits.
families="$(unit_values RestrictAddressFamilies | tr ' ' '\n' | sort -u)"
used_families="$(grep -oE '\bsocket\(AF_[A-Z0-9]+' "$tmp/syscalls.trace" | sed 's/socket(//' | sort -u)"
[ -n "$used_families" ] || fail "strace recorded no socket"
refused_families="$(comm -23 <(echo "$used_families") <(echo "$families") | tr '\n' ' ')"
[ -z "$refused_families" ] ||
  fail "voucherd opened sockets RestrictAddressFamilies refuses: $refused_families"
echo "sockets: $(echo "$used_families" | tr '\n' ' ')(the unit admits $(echo "$families" | tr '\n' ' '))"
echo "PASS"
