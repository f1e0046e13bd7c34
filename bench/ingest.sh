#!/usr/bin/env bash
# Durable SMTP ingest: smtp-sink (ceiling), Postfix (durable relay) and Postroom, all measured in
# ONE run with the same smtp-source workloads, by the reference peers' own driver (run.sh, from a
# private copy in the output directory that differs only in its port numbers).
#
#   bench/ingest.sh                      # full matrix, REPS=3 (35 min or more on 2 cores)
#   REPS=1 MSGS=2000 bench/ingest.sh     # quick look
#   RESUME=/var/tmp/postroom-bench/ingest-... bench/ingest.sh   # continue an interrupted run
#
# Workload (peers' defaults): MSGS=20000 messages of SIZE=2048 bytes, SESSIONS="10 50" concurrent
# sessions, CONNS="new reuse" (new: one connection per message; reuse: smtp-source -d).
# Systems, measured cell by cell and interleaved (rep 1 of every system in a cell, then the next
# cell, ...; then rep 2), so slow drift of the machine hits all of them alike:
#   smtp-sink                      no storage: the ceiling                   (run.sh sink)
#   postfix / relay to smtp-sink   acceptance rate while relaying; its queue is on disk and
#                                  fsync'd per message (e2e rate recorded too) (run.sh postfix)
#   postfix / ingest only          acceptance with qmgr off: queue-file write+fsync only
#                                                                            (run.sh postfix_ingest)
#   postroom p=N                   embedded SQLite, [smtp] processes = N for N in PROCESSES,
#                                  delivery off, a fresh data dir and server before every rep;
#                                  "Nt" in PROCESSES: the same with a writer thread in each
#                                  process instead of the writer process (writer_process = false)
#                                                                            (run.sh target)
# Shared machine: bench/cpu_monitor.py counts the CPU of processes that are not part of the run.
# Each measurement first waits (at most QUIET_TIMEOUT s) until foreign processes used at most
# QUIET_CORES for 5 s, and is repeated (up to ATTEMPTS times, keeping the least disturbed attempt)
# when they used more than MAX_FOREIGN cores on average during it.
# Postroom's stored message count is checked after every rep (must equal MSGS).
# Output: the tables (bench/ingest_report.py) on stdout and in $OUT/report.md; the accepted raw
# rows (run.sh's columns + foreign_cores) in $OUT/raw.csv, rejected ones in $OUT/rejected.csv.
# Env: REPS=3 MSGS=20000 SIZE=2048 SESSIONS="10 50" CONNS="new reuse" TMAX=300 PROCESSES="1 2"
#      POSTFIX_GROUPS="postfix postfix_ingest" MAX_FOREIGN=0.15 ATTEMPTS=3 QUIET_CORES=0.2
#      QUIET_TIMEOUT=600
#      PEERS=/work/shared/peers BENCH_OUT=/var/tmp/postroom-bench
#      PORT=12600 HTTP_PORT=12601 (Postroom) SINK_PORT=12602 POSTFIX_PORT=12603 (and 12604)
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
PY=$ROOT/.venv/bin/python
export PEERS=${PEERS:-/work/shared/peers}
export POSTROOM=${POSTROOM:-$ROOT/.venv/bin/postroom}
export PORT=${PORT:-12600} HTTP_PORT=${HTTP_PORT:-12601}
SINK_PORT=${SINK_PORT:-12602} POSTFIX_PORT=${POSTFIX_PORT:-12603}  # and POSTFIX_PORT+1 (submission)
export MSGS=${MSGS:-20000} SIZE=${SIZE:-2048} TMAX=${TMAX:-300}
REPS=${REPS:-3} SESSIONS_LIST=${SESSIONS:-"10 50"} CONNS_LIST=${CONNS:-"new reuse"}
PROCESSES=${PROCESSES:-"1 2"}
POSTFIX_GROUPS=${POSTFIX_GROUPS:-"postfix postfix_ingest"}
MAX_FOREIGN=${MAX_FOREIGN:-0.15} ATTEMPTS=${ATTEMPTS:-3}
QUIET_CORES=${QUIET_CORES:-0.2} QUIET_TIMEOUT=${QUIET_TIMEOUT:-600}

# ---- Postroom lifecycle (also called by run.sh through TARGET_RESET: "ingest.sh _reset") ----

# postroom_stop: SIGTERM the server (bounded wait), then record how many messages its store holds.
postroom_stop() {
  local pidfile=$WORK/postroom.pid db=$WORK/data/postroom.db pid i
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "postroom $pid did not stop; SIGKILL" >&2; kill -KILL "$pid"; }
    rm -f "$pidfile"
  fi
  if [ -f "$db" ]; then
    echo "$VARIANT $(sqlite3 "$db" 'select count(*) from messages')" >>"$WORK/counts.txt"
    rm -rf "$WORK/data"
  fi
}

# postroom_start: empty data dir, the loopback-trusting account, server up ("postroom ready").
# VARIANT is the number of processes, with a "t" after it for `[storage] writer_process = false`.
postroom_start() {
  local i procs=${VARIANT%t} writer=true
  [ "$procs" = "$VARIANT" ] || writer=false
  mkdir -p "$WORK/data"
  cat >"$WORK/postroom.toml" <<EOF
data_dir = "$WORK/data"

[smtp]
hostname = "postroom.bench.test"
listen_plain = "127.0.0.1:$PORT"
listen_implicit_tls = ""
listen_starttls = ""
processes = $procs

[storage]
writer_process = $writer

[http]
listen = "127.0.0.1:$HTTP_PORT"

[delivery]
enabled = false
EOF
  "$POSTROOM" accounts create bench --sender-domain example.com --trusted-network 127.0.0.0/8 \
    --config "$WORK/postroom.toml" >/dev/null
  "$POSTROOM" serve --config "$WORK/postroom.toml" >>"$WORK/postroom.log" 2>&1 &
  echo $! >"$WORK/postroom.pid"
  for i in $(seq 300); do
    grep -q "postroom ready" "$WORK/postroom.log" 2>/dev/null && return 0
    kill -0 "$(cat "$WORK/postroom.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "postroom did not start; see $WORK/postroom.log" >&2
  return 1
}

if [ "${1:-}" = _reset ]; then
  : "${WORK:?} ${VARIANT:?}"
  postroom_stop
  : >"$WORK/postroom.log"
  postroom_start
  exit 0
fi

# ---- the run ----

for tool in smtp-source smtp-sink postfix saslpasswd2 sqlite3 bc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run $PEERS/setup.sh first" >&2; exit 1; }
done
[ -x "$POSTROOM" ] || { echo "missing $POSTROOM (the project's venv)" >&2; exit 1; }

# RESUME=OUTPUT_DIR continues an interrupted run: measurements listed in its done.txt are skipped.
if [ -n "${RESUME:-}" ]; then OUT=$RESUME; else OUT=${BENCH_OUT:-/var/tmp/postroom-bench}/ingest-$(date +%Y%m%d-%H%M%S); fi
export WORK=$OUT/postroom VARIANT=1 ANCHORS_STATE=$OUT/anchors
mkdir -p "$WORK"
if [ -n "${RESUME:-}" ]; then  # servers an interrupted run may have left, each by its pid file
  postroom_stop
  [ -f "$ANCHORS_STATE/sink.pid" ] && kill "$(cat "$ANCHORS_STATE/sink.pid")" 2>/dev/null && sleep 1
  [ -d "$ANCHORS_STATE/postfix/etc" ] && postfix -c "$ANCHORS_STATE/postfix/etc" stop 2>/dev/null && sleep 2
fi
for p in $PORT $HTTP_PORT $SINK_PORT $POSTFIX_PORT $((POSTFIX_PORT + 1)); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then echo "port $p is busy" >&2; exit 1; fi
done

# A private copy of the peers' driver: its own ports and state directory, because lib.sh fixes the
# ports and other people may run the peers' scripts at the same time. Only the port numbers change.
RUNNER=$OUT/peers
mkdir -p "$RUNNER/results"
cp -r "$PEERS/run.sh" "$PEERS/lib.sh" "$PEERS/summarize.py" "$PEERS/postfix" "$RUNNER/"
sed -i -e "s/^SINK_PORT=[0-9]*/SINK_PORT=$SINK_PORT/" -e "s/^POSTFIX_PORT=[0-9]*/POSTFIX_PORT=$POSTFIX_PORT/" \
  -e "s/^POSTFIX_SUB_PORT=[0-9]*/POSTFIX_SUB_PORT=$((POSTFIX_PORT + 1))/" "$RUNNER/lib.sh"
RAW=$RUNNER/results/raw.csv
FOREIGN=$OUT/foreign_cpu.log

"$PY" "$BENCH/cpu_monitor.py" watch --log "$FOREIGN" --own $$ --own-cmdline "$WORK/" \
  --own-pidfile "$ANCHORS_STATE/postfix/spool/pid/master.pid" &
MONITOR=$!
cleanup() { postroom_stop; kill "$MONITOR" 2>/dev/null || true; }
trap cleanup EXIT

{
  echo "date: $(date -u +%FT%TZ)${RESUME:+ (resumed)}"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "kernel: $(uname -r)"
  echo "python: $("$PY" --version 2>&1)"
  echo "postroom: $(git -C "$ROOT" rev-parse --short HEAD)"
  echo "postfix: $(postconf -d -h mail_version)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "workload: REPS=$REPS MSGS=$MSGS SIZE=$SIZE SESSIONS='$SESSIONS_LIST' CONNS='$CONNS_LIST'"
  echo "postroom variants: processes in '$PROCESSES'; postfix groups: '$POSTFIX_GROUPS'"
  echo "foreign CPU: repeat above $MAX_FOREIGN cores, $ATTEMPTS attempts; wait ${QUIET_TIMEOUT}s for <= $QUIET_CORES"
} | tee -a "$OUT/env.txt"

# measure_once SYSTEM S CONN: one rep of one cell, via run.sh (which appends its rows to $RAW)
measure_once() {
  local sys=$1 s=$2 c=$3
  case $sys in
    sink|postfix*) SESSIONS=$s CONNS=$c REPS=1 "$RUNNER/run.sh" "$sys" ;;
    postroom-p*)
      VARIANT=${sys#postroom-p} SESSIONS=$s CONNS=$c REPS=1 TARGET_RESET="$BENCH/ingest.sh _reset" \
        "$RUNNER/run.sh" target "postroom p=${sys#postroom-p}" "$PORT"
      VARIANT=${sys#postroom-p} postroom_stop ;;
  esac
}

# measure SYSTEM S CONN: wait (bounded) for a quiet machine and measure; if foreign processes used
# more than MAX_FOREIGN cores meanwhile, try again, up to ATTEMPTS times, and keep the attempt
# that was disturbed least. Every row carries the foreign CPU of its attempt.
measure() {
  local sys=$1 s=$2 c=$3 attempt n0 t0 t1 foreign top rows best=
  local best_foreign=999 tmp=$OUT/attempt.csv
  for attempt in $(seq "$ATTEMPTS"); do
    "$PY" "$BENCH/cpu_monitor.py" wait-quiet --log "$FOREIGN" --max-cores "$QUIET_CORES" \
      --timeout "$QUIET_TIMEOUT" || echo "machine not quiet after ${QUIET_TIMEOUT}s; measuring anyway"
    n0=$( [ -f "$RAW" ] && wc -l <"$RAW" || echo 0 )
    t0=$(date +%s.%N)
    measure_once "$sys" "$s" "$c" | grep -v '^summary:' || true
    sleep 1  # one more monitor sample
    t1=$(date +%s.%N)
    read -r foreign top < <("$PY" "$BENCH/cpu_monitor.py" between --log "$FOREIGN" "$t0" "$t1")
    rows=$(tail -n +"$((n0 + 1))" "$RAW" | grep -v '^run,' | tr -d '\r' \
      | awk -F, -v OFS=, -v rep="$rep" -v f="$foreign" '{ $7 = rep; print $0, f }')
    [ -n "$rows" ] || { echo "no rows from $sys s=$s $c" >&2; continue; }
    echo "foreign CPU during it: $foreign cores (mostly $top)"
    if [ "$(echo "$foreign < $best_foreign" | bc)" = 1 ]; then
      [ -n "$best" ] && cat "$tmp" >>"$OUT/rejected.csv"
      echo "$rows" >"$tmp"; best=$attempt; best_foreign=$foreign
    else
      echo "$rows" >>"$OUT/rejected.csv"
    fi
    [ "$(echo "$foreign <= $MAX_FOREIGN" | bc)" = 1 ] || [ "$attempt" = "$ATTEMPTS" ] && break
    echo "REPEAT $sys s=$s $c after attempt $attempt: foreign CPU $foreign cores ($top)" | tee -a "$OUT/rejected.log"
  done
  [ -n "$best" ] && cat "$tmp" >>"$OUT/raw.csv"
  rm -f "$tmp"
}

[ -f "$OUT/raw.csv" ] || echo "run,system,scenario,sessions,conn,msgs,rep,metric,seconds,rate,cpu_busy_pct,\
iowait_pct,src_cpu_s,server_cpu_us_per_msg,flushes_per_msg,udp_out,foreign_cores" >"$OUT/raw.csv"
touch "$OUT/done.txt"
systems="sink $POSTFIX_GROUPS"
for n in $PROCESSES; do systems="$systems postroom-p$n"; done
for rep in $(seq "$REPS"); do
  for s in $SESSIONS_LIST; do
    for c in $CONNS_LIST; do
      for sys in $systems; do
        grep -qx "$rep $s $c $sys" "$OUT/done.txt" && continue
        echo "=== rep $rep/$REPS  sessions=$s $c  $sys"
        measure "$sys" "$s" "$c"
        echo "$rep $s $c $sys" >>"$OUT/done.txt"
      done
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"

"$PY" "$BENCH/ingest_report.py" "$OUT/raw.csv" --counts "$WORK/counts.txt" --msgs "$MSGS" \
  --rejected "$OUT/rejected.log" | tee "$OUT/report.md"
echo "raw rows: $OUT/raw.csv"
