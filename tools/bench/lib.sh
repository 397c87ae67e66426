# Shared by the A/B scripts (ab.sh, tail_ab.sh): stopping the name server and broker they
# started (NS_PID, BR_PID) and waiting for a loopback port to open. Source it; not a script.

stop() {
  [[ -n $BR_PID ]] && kill "$BR_PID" 2>/dev/null && wait "$BR_PID" 2>/dev/null || true
  [[ -n $NS_PID ]] && kill "$NS_PID" 2>/dev/null && wait "$NS_PID" 2>/dev/null || true
  BR_PID=""; NS_PID=""
}

wait_port() {
  local i
  for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}
