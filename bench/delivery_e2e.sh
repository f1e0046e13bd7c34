#!/usr/bin/env bash
# End-to-end delivery (issue 3): Postroom against Postfix, same load, same sink, one run.
#
#   bench/delivery_e2e.sh                         # REPS=1 MSGS=20000, both systems, then the fan-out
#   REPS=3 bench/delivery_e2e.sh                  # more repetitions (interleaved: postfix, postroom, ...)
#   SYSTEMS=postroom FANOUT=0 MSGS=2000 bench/delivery_e2e.sh   # quick look at Postroom alone
#
# Load: MSGS messages of SIZE bytes, each to one recipient, spread evenly over DOMAINS destination
# domains d00.example.org .. d99.example.org. Postfix's smtp-source takes a single -t address, so
# the load is SESSIONS parallel "lanes"; lane i submits, one after another, MSGS/DOMAINS messages
# to each of its domains with `smtp-source -s 1 [-d] -m N -l SIZE -t rcpt@dNN.example.org`
# (CONN=new: one message per connection, as the peers' "50 new" Postfix reference of ~415 msgs/s;
# CONN=reuse: smtp-source -d). So SESSIONS connections are open at any time, as `smtp-source -s`.
# Timing: smtp-sink (postfix's) is started on 127.0.0.1:12526 with -M MSGS before the load; the
# end-to-end time runs from the first submission until the sink has received all MSGS messages
# and exited (the peers' run.sh e2e method). "accept" is the time until the last smtp-source exits.
#
# Systems, each from an empty queue:
#   postfix   the peers' private Postfix (/work/shared/peers/postfix/postfix.sh) in its own state
#             dir, with "relayhost = [127.0.0.1]:12526" added so the 100 subdomains go to the sink
#             (its transport_maps only names example.org itself); everything else as the peers set it.
#   postroom  `postroom serve` with embedded SQLite, [delivery] routes = { "*" = "127.0.0.1:12526" },
#             tls = "off", other [delivery] keys at their defaults unless DELIVERY_EXTRA adds TOML
#             lines (e.g. DELIVERY_EXTRA=$'workers = 8\nbatch_size = 500'). A fresh data dir and
#             server for every rep; the store must hold MSGS delivered recipients afterwards.
# Fan-out (FANOUT=10000): one message with FANOUT recipients r<i>@d<i%DOMAINS>.example.org submitted
# over SMTP to a fresh Postroom ([smtp] max_recipients raised); time until the store records all
# delivered, and the server's peak RSS (VmHWM) - bench/delivery_fanout.py.
# Shared machine: before each measurement wait (<= QUIET_TIMEOUT s) until processes outside this run
# used <= QUIET_CORES cores for 5 s (bench/cpu_monitor.py); the foreign load during each measurement
# is recorded in the results (column foreign_cores).
# Output: $OUT/results.csv (one row per measurement) and a summary on stdout.
# Env: REPS=1 MSGS=20000 SIZE=2048 DOMAINS=100 SESSIONS=50 CONN=new SYSTEMS="postfix postroom"
#      FANOUT=10000 TMAX=300 QUIET_CORES=0.10 QUIET_TIMEOUT=900 PORT=12620 HTTP_PORT=12621
#      PEERS=/work/shared/peers OUT=/var/tmp/postroom-delivery-bench DELIVERY_EXTRA=
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
PY=$ROOT/.venv/bin/python
POSTROOM=$ROOT/.venv/bin/postroom
PEERS=${PEERS:-/work/shared/peers}
REPS=${REPS:-1} MSGS=${MSGS:-20000} SIZE=${SIZE:-2048} DOMAINS=${DOMAINS:-100}
SESSIONS=${SESSIONS:-50} CONN=${CONN:-new} SYSTEMS=${SYSTEMS:-"postfix postroom"}
FANOUT=${FANOUT:-10000} TMAX=${TMAX:-300}
QUIET_CORES=${QUIET_CORES:-0.10} QUIET_TIMEOUT=${QUIET_TIMEOUT:-900}
PORT=${PORT:-12620} HTTP_PORT=${HTTP_PORT:-12621}
OUT=${OUT:-/var/tmp/postroom-delivery-bench}
DELIVERY_EXTRA=${DELIVERY_EXTRA:-}
SINK_PORT=12526
export ANCHORS_STATE=$OUT/anchors   # our own Postfix queue, never the shared one

(( MSGS % DOMAINS == 0 )) || { echo "MSGS must be a multiple of DOMAINS" >&2; exit 2; }
(( DOMAINS % SESSIONS == 0 || SESSIONS % DOMAINS == 0 )) || { echo "SESSIONS must divide DOMAINS (or vice versa)" >&2; exit 2; }
mkdir -p "$OUT" "$ANCHORS_STATE"
RESULTS=$OUT/results.csv
[ -f "$RESULTS" ] || echo "run,system,rep,msgs,domains,sessions,conn,accept_s,e2e_s,e2e_rate,foreign_cores,peak_rss_mb,checked" >"$RESULTS"
RUN_ID=$(date +%Y%m%d-%H%M%S)
MON_LOG=$OUT/cpu-$RUN_ID.log
SINK_PID=

now() { date +%s.%N; }
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_port() {
  local deadline=$(( $(date +%s) + ${2:-30} ))
  until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
    [ "$(date +%s)" -ge "$deadline" ] && { echo "port $1 not up" >&2; return 1; }
    sleep 0.1
  done
}

# ---- sink ----
sink_start() {  # sink_start [MAX]: smtp-sink on 12526 (exits after MAX messages)
  local extra=()
  [ -n "${1:-}" ] && extra=(-M "$1")
  port_free $SINK_PORT || { echo "port $SINK_PORT busy (someone else's sink?)" >&2; return 1; }
  smtp-sink -u nobody -m 1000 "${extra[@]}" 127.0.0.1:$SINK_PORT 4096 >"$OUT/sink.log" 2>&1 &
  SINK_PID=$!
  wait_port $SINK_PORT
}
sink_running() { [ -n "$SINK_PID" ] && kill -0 "$SINK_PID" 2>/dev/null; }
sink_stop() {
  if sink_running; then kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; fi
  SINK_PID=
}

# ---- postfix (the peers' scripts, our own state dir) ----
pf() { "$PEERS/postfix/postfix.sh" "$@"; }
pf_up() {
  pf stop >/dev/null 2>&1 || true
  pf setup "relayhost = [127.0.0.1]:$SINK_PORT" >/dev/null
  pf start
}
pf_down() {
  postsuper -c "$ANCHORS_STATE/postfix/etc" -d ALL >/dev/null 2>&1 || true
  pf stop >/dev/null 2>&1 || true
}

# ---- postroom ----
PR_DIR=$OUT/postroom PR_PID=
pr_config() {  # pr_config MAX_RECIPIENTS
  cat <<EOF
data_dir = "$PR_DIR/data"

[smtp]
hostname = "postroom.bench.test"
listen_plain = "127.0.0.1:$PORT"
listen_implicit_tls = ""
listen_starttls = ""
max_recipients = $1

[http]
listen = "127.0.0.1:$HTTP_PORT"

[delivery]
enabled = true
routes = { "*" = "127.0.0.1:$SINK_PORT" }
tls = "off"
$DELIVERY_EXTRA
EOF
}
pr_start() {  # pr_start [MAX_RECIPIENTS]: fresh data dir, account, server; waits for "postroom ready"
  pr_stop
  rm -rf "$PR_DIR"; mkdir -p "$PR_DIR/data"
  pr_config "${1:-1000}" >"$PR_DIR/postroom.toml"
  "$POSTROOM" accounts create bench --sender-domain example.com --trusted-network 127.0.0.0/8 \
    --config "$PR_DIR/postroom.toml" >/dev/null
  "$POSTROOM" serve --config "$PR_DIR/postroom.toml" >"$PR_DIR/postroom.log" 2>&1 &
  PR_PID=$!
  echo "$PR_PID" >"$OUT/postroom.pid"
  local i
  for i in $(seq 300); do
    grep -q "postroom ready" "$PR_DIR/postroom.log" 2>/dev/null && return 0
    kill -0 "$PR_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "postroom did not start; see $PR_DIR/postroom.log" >&2; return 1
}
pr_stop() {
  [ -n "$PR_PID" ] || return 0
  kill -TERM "$PR_PID" 2>/dev/null || true
  local i
  for i in $(seq 150); do kill -0 "$PR_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PR_PID" 2>/dev/null && kill -KILL "$PR_PID" 2>/dev/null
  wait "$PR_PID" 2>/dev/null || true
  PR_PID=
}
pr_delivered() { sqlite3 "$PR_DIR/data/postroom.db" "select count(*) from recipients where status = 'delivered'"; }

cleanup() {
  sink_stop; pr_stop; pf_down
  [ -n "${MON_PID:-}" ] && kill "$MON_PID" 2>/dev/null || true
}
trap cleanup EXIT

# ---- load ----
# load PORT: SESSIONS lanes of sequential smtp-source runs, MSGS/DOMAINS messages per domain.
load() {
  local port=$1 per=$((MSGS / DOMAINS)) lane d d_opt=
  [ "$CONN" = reuse ] && d_opt=-d
  local lanes=$SESSIONS per_lane_msgs=$per
  if (( SESSIONS > DOMAINS )); then  # several lanes per domain
    per_lane_msgs=$((per * DOMAINS / SESSIONS))
  fi
  for lane in $(seq 0 $((lanes - 1))); do
    (
      if (( SESSIONS > DOMAINS )); then
        d=$((lane % DOMAINS))
        smtp-source -s 1 $d_opt -m "$per_lane_msgs" -l "$SIZE" -f a@example.com \
          -t "rcpt@d$(printf %02d "$d").example.org" 127.0.0.1:"$port" >/dev/null
      else
        for d in $(seq "$lane" "$lanes" $((DOMAINS - 1))); do
          smtp-source -s 1 $d_opt -m "$per" -l "$SIZE" -f a@example.com \
            -t "rcpt@d$(printf %02d "$d").example.org" 127.0.0.1:"$port" >/dev/null || exit 1
        done
      fi
    ) &
  done
  local rc=0 p
  for p in $(jobs -p); do
    [ "$p" = "$SINK_PID" ] || [ "$p" = "$PR_PID" ] || [ "$p" = "${MON_PID:-}" ] && continue
    wait "$p" || rc=1
  done
  return $rc
}

quiet() {
  "$PY" "$BENCH/cpu_monitor.py" wait-quiet --log "$MON_LOG" --max-cores "$QUIET_CORES" \
    --quiet-for 5 --timeout "$QUIET_TIMEOUT" || echo "WARNING: machine not quiet after ${QUIET_TIMEOUT}s; measuring anyway" >&2
}
foreign() { "$PY" "$BENCH/cpu_monitor.py" between --log "$MON_LOG" "$1" "$2" | awk '{print $1}'; }
hwm_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

# one_run SYSTEM REP: time the load to the sink
one_run() {
  local sys=$1 rep=$2 port t0 t1 t2 deadline checked=- rss=-
  if [ "$sys" = postfix ]; then pf_up; port=12525; else pr_start; port=$PORT; fi
  quiet
  sink_start "$MSGS"
  t0=$(now)
  load "$port" || echo "WARNING: an smtp-source run failed ($sys rep $rep)" >&2
  t1=$(now)
  deadline=$(( $(date +%s) + TMAX ))
  while sink_running && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
  t2=$(now)
  if sink_running; then echo "FAIL: $sys rep $rep: sink did not get $MSGS messages in ${TMAX}s" >&2; sink_stop; t2=nan; fi
  SINK_PID=
  sleep 1  # let the monitor log cover t2
  local fc; fc=$(foreign "$t0" "$(now)")
  if [ "$sys" = postroom ]; then
    rss=$(hwm_mb "$PR_PID")
    local n i; for i in $(seq 100); do n=$(pr_delivered); [ "$n" -ge "$MSGS" ] && break; sleep 0.1; done
    checked="delivered=$n"; pr_stop  # outcomes are recorded just after the sink's 250
  else
    checked="queue_left=$(pf queue-count)"; pf_down
  fi
  local acc e2e rate
  acc=$(echo "$t1 - $t0" | bc); e2e=$( [ "$t2" = nan ] && echo nan || echo "$t2 - $t0" | bc)
  rate=$( [ "$e2e" = nan ] && echo nan || echo "scale=1; $MSGS / $e2e" | bc)
  echo "$RUN_ID,$sys,$rep,$MSGS,$DOMAINS,$SESSIONS,$CONN,$acc,$e2e,$rate,$fc,$rss,$checked" | tee -a "$RESULTS"
}

# ---- main ----
for t in smtp-source smtp-sink sqlite3 bc; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }; done
"$PY" "$BENCH/cpu_monitor.py" watch --log "$MON_LOG" --own $$ --own-cmdline "$OUT/" \
  --own-pidfile "$ANCHORS_STATE/postfix/spool/pid/master.pid" &
MON_PID=$!
sleep 6
{
  echo "# machine: nproc=$(nproc) cpu=$(lscpu | sed -n 's/^Model name: *//p') python=$("$PY" -V 2>&1 | cut -d' ' -f2)"
  echo "# postroom: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo ' + uncommitted src changes') postfix: $(postconf -d -h mail_version)"
  echo "# load: $MSGS x $SIZE B, $DOMAINS domains, $SESSIONS sessions ($CONN), REPS=$REPS, DELIVERY_EXTRA='${DELIVERY_EXTRA//$'\n'/; }'"
} | tee -a "$OUT/runs.txt"
for rep in $(seq "$REPS"); do
  for sys in $SYSTEMS; do one_run "$sys" "$rep"; done
done

if [ "$FANOUT" -gt 0 ]; then
  pr_start "$FANOUT"
  sink_start
  quiet
  "$PY" "$BENCH/delivery_fanout.py" --port "$PORT" --db "$PR_DIR/data/postroom.db" --pid "$PR_PID" \
    --recipients "$FANOUT" --domains "$DOMAINS" --timeout "$TMAX" --monitor-log "$MON_LOG" \
    | tee -a "$OUT/fanout.txt"
  sink_stop; pr_stop
fi

echo "== summary (run $RUN_ID; e2e msgs/s; ratio = postroom / postfix)"
awk -F, -v run="$RUN_ID" '$1 == run { print; if ($2 == "postfix") { pf[$3] = $10 } else if ($2 == "postroom") { pr[$3] = $10 } }
  END { for (r in pr) if (pf[r] > 0) printf "rep %s: postroom %.1f / postfix %.1f = %.2fx\n", r, pr[r], pf[r], pr[r] / pf[r] }' "$RESULTS"
