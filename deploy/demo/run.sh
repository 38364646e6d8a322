#!/usr/bin/env bash
# make demo: simulated machines, two weft-agents and a weft-gateway with its
# dashboard, all on 127.0.0.1. Ctrl-C stops everything. docs/operator.md.
#
# Environment (all optional):
#   WEFT_DEMO_DIR         data and logs (default ./.demo)
#   WEFT_DEMO_HTTP_PORT   dashboard and API (default 8080)
#                         (the processes run from copies of deploy/demo's configs in
#                         $WEFT_DEMO_DIR, with these ports written in)
#   WEFT_DEMO_MQTT_PORT   the gateway's embedded MQTT broker (default 18830)
#   WEFT_DEMO_DYEING_PORT, WEFT_DEMO_LOOM_PORT, WEFT_DEMO_OPCUA_PORT
#                         the simulators (default 25020, 25021, 24840)
#   WEFT_ADMIN_TOKEN, WEFT_READ_TOKEN   API tokens (default: made once, kept in $WEFT_DEMO_DIR/tokens)
#   WEFT_BIN              where the binaries are (default ./bin)
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${WEFT_BIN:-./bin}
export WEFT_DEMO_DIR=${WEFT_DEMO_DIR:-.demo}
export WEFT_DEMO_HTTP_PORT=${WEFT_DEMO_HTTP_PORT:-8080}
export WEFT_DEMO_MQTT_PORT=${WEFT_DEMO_MQTT_PORT:-18830}
export WEFT_DEMO_DYEING_PORT=${WEFT_DEMO_DYEING_PORT:-25020}
export WEFT_DEMO_LOOM_PORT=${WEFT_DEMO_LOOM_PORT:-25021}
export WEFT_DEMO_OPCUA_PORT=${WEFT_DEMO_OPCUA_PORT:-24840}
DEMO=deploy/demo
LOGS=$WEFT_DEMO_DIR/logs

for b in weft-sim weft-gateway weft-agent; do
	if [ ! -x "$BIN/$b" ]; then
		echo "demo: $BIN/$b is missing: run 'make demo' (it builds first) or 'make build'" >&2
		exit 1
	fi
done

# A port already taken would make a process fail late with a less clear message.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for v in WEFT_DEMO_HTTP_PORT WEFT_DEMO_MQTT_PORT WEFT_DEMO_DYEING_PORT WEFT_DEMO_LOOM_PORT WEFT_DEMO_OPCUA_PORT; do
	if port_busy "${!v}"; then
		echo "demo: port ${!v} on 127.0.0.1 is in use; pick another with $v=NNNN make demo" >&2
		exit 1
	fi
done

mkdir -p "$LOGS"
chmod 700 "$WEFT_DEMO_DIR"
# The processes run from copies: a config pushed from the dashboard is saved
# over the agent's file, and that must not be deploy/demo's. The copies get
# the ports asked for; deploy/demo's files say the defaults.
for f in gateway.yaml agent-dyehouse.yaml agent-weaving.yaml; do
	sed -e "s/127\.0\.0\.1:8080\b/127.0.0.1:$WEFT_DEMO_HTTP_PORT/" \
		-e "s/127\.0\.0\.1:18830\b/127.0.0.1:$WEFT_DEMO_MQTT_PORT/" \
		-e "s/127\.0\.0\.1:25020\b/127.0.0.1:$WEFT_DEMO_DYEING_PORT/" \
		-e "s/127\.0\.0\.1:25021\b/127.0.0.1:$WEFT_DEMO_LOOM_PORT/" \
		-e "s/127\.0\.0\.1:24840\b/127.0.0.1:$WEFT_DEMO_OPCUA_PORT/" \
		"$DEMO/$f" >"$WEFT_DEMO_DIR/$f"
done
CONF=$WEFT_DEMO_DIR
# Tokens: made once and kept, so a browser that logged in stays logged in.
if [ ! -s "$WEFT_DEMO_DIR/tokens" ]; then
	( umask 077
	  printf 'WEFT_ADMIN_TOKEN=demo-admin-%s\nWEFT_READ_TOKEN=demo-read-%s\n' \
		"$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" "$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" \
		>"$WEFT_DEMO_DIR/tokens" )
fi
admin_env=${WEFT_ADMIN_TOKEN:-}
read_env=${WEFT_READ_TOKEN:-}
# shellcheck disable=SC1091
. "$WEFT_DEMO_DIR/tokens"
export WEFT_ADMIN_TOKEN=${admin_env:-$WEFT_ADMIN_TOKEN}
export WEFT_READ_TOKEN=${read_env:-$WEFT_READ_TOKEN}

pids=()
names=()
stopping=0
stop_all() {
	stopping=1
	trap - INT TERM
	echo
	echo "demo: stopping (agents, then the gateway, then the simulators)"
	# Reverse start order: agents first so their last data reaches the gateway.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	echo "demo: stopped. Data and logs are in $WEFT_DEMO_DIR (delete it to start afresh)."
}
trap 'stop_all; exit 0' INT TERM
trap 'if [ $stopping = 0 ]; then stop_all; fi' EXIT

start() { # start NAME CMD...: runs CMD in the background, output to $LOGS/NAME.log
	local name=$1
	shift
	"$@" >>"$LOGS/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
}

wait_until() { # wait_until WHAT SECONDS CMD...
	local what=$1 secs=$2
	shift 2
	for ((t = 0; t < secs * 10; t++)); do
		if "$@"; then return 0; fi
		for i in "${!pids[@]}"; do
			if ! kill -0 "${pids[$i]}" 2>/dev/null; then
				echo "demo: ${names[$i]} exited; the end of $LOGS/${names[$i]}.log:" >&2
				tail -n 20 "$LOGS/${names[$i]}.log" >&2
				exit 1
			fi
		done
		sleep 0.1
	done
	echo "demo: $what did not happen within ${secs}s; see $LOGS/" >&2
	exit 1
}

http_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$WEFT_DEMO_HTTP_PORT" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 ') 2>/dev/null; }

echo "demo: logs in $LOGS/"
start weft-sim "$BIN/weft-sim" --tick 200ms \
	--modbus "127.0.0.1:$WEFT_DEMO_DYEING_PORT=dyeing" \
	--modbus "127.0.0.1:$WEFT_DEMO_LOOM_PORT=loom" \
	--opcua "127.0.0.1:$WEFT_DEMO_OPCUA_PORT=winder"
wait_until "the simulators listening" 20 port_busy "$WEFT_DEMO_OPCUA_PORT"
start weft-gateway "$BIN/weft-gateway" run --config "$CONF/gateway.yaml"
wait_until "the gateway ready (GET /healthz)" 30 http_ok
start dyehouse-gw "$BIN/weft-agent" run --config "$CONF/agent-dyehouse.yaml"
start weaving-gw "$BIN/weft-agent" run --config "$CONF/agent-weaving.yaml"

url="http://127.0.0.1:$WEFT_DEMO_HTTP_PORT"
cat <<MSG

  Weft demo is running.

  Dashboard:    $url/
  Admin token:  $WEFT_ADMIN_TOKEN   (may push configs)
  Read token:   $WEFT_READ_TOKEN   (may only look)
  One click:    $url/login#token=$WEFT_ADMIN_TOKEN

  API:          curl -H "Authorization: Bearer $WEFT_ADMIN_TOKEN" $url/api/v1/agents
  Simulators:   Modbus dyeing 127.0.0.1:$WEFT_DEMO_DYEING_PORT, loom 127.0.0.1:$WEFT_DEMO_LOOM_PORT, OPC UA winder 127.0.0.1:$WEFT_DEMO_OPCUA_PORT

  Press Ctrl-C to stop.

MSG

# Run until Ctrl-C, or until a process dies on its own.
while :; do
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "demo: ${names[$i]} exited on its own; the end of $LOGS/${names[$i]}.log:" >&2
			tail -n 20 "$LOGS/${names[$i]}.log" >&2
			exit 1
		fi
	done
	sleep 1 &
	wait $! || true
done
