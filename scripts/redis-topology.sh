# shellcheck shell=bash
# Redis high-availability topologies on free loopback ports, from Debian's
# redis-server package (redis-server, redis-server --sentinel, redis-cli):
# sourced by scripts/test.sh (the shared Sentinel deployment and Cluster of
# the test run) and bench/run.sh (the Sentinel and Cluster scenarios).
# docs/redis.md, "Tests", describes them.
#
#   redis_topology_dir=$(mktemp -d)
#   start_redis_sentinel   # 1 master, 2 replicas, 3 sentinels (quorum 2)
#   start_redis_cluster    # 3 masters, slots spread by redis-cli --cluster create
#   ...
#   stop_redis_topology    # every process started here, then the directory
#
# After start_redis_sentinel: redis_sentinel_master (the master name) and
# redis_sentinel_addrs (host:port,host:port,host:port of the sentinels).
# After start_redis_cluster: redis_cluster_addrs (host:port,... of the nodes).
# redis_topology_args are extra redis-server arguments of the data nodes
# (default: no persistence, the tests' clean slate; bench/run.sh asks for
# appendonly).

redis_topology_dir=${redis_topology_dir:-}
redis_topology_pids=()
redis_topology_ports=()
redis_topology_args=(${redis_topology_args[@]+"${redis_topology_args[@]}"})
[ "${#redis_topology_args[@]}" -gt 0 ] || redis_topology_args=(--save "" --appendonly no)
# redis_topology_exec prefixes every redis-server (e.g. taskset -c 0); it
# must exec the server so the pid recorded is the server's.
redis_topology_exec=(${redis_topology_exec[@]+"${redis_topology_exec[@]}"})

# loopback_random_port prints a random port below the kernel's ephemeral
# range (10000 up to its low end, or 20000-59999 when that leaves fewer
# than 1000 ports): no connection takes such a port as its source port, and
# no probe of it can connect to itself, while its server is down and about
# to start again (internal/freeport/freeport.go says the same for Go).
loopback_random_port() {
	local low
	low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	if [[ "$low" =~ ^[0-9]+$ ]] && [ "$low" -ge 11000 ]; then
		echo $((10000 + RANDOM % (low - 10000)))
	else
		echo $((20000 + RANDOM % 40000))
	fi
}

# redis_topology_port prints a loopback port nothing listens on and this
# file has not handed out yet.
redis_topology_port() {
	local port used p
	for _ in $(seq 100); do
		port=$(loopback_random_port)
		used=""
		for p in ${redis_topology_ports[@]+"${redis_topology_ports[@]}"}; do
			[ "$p" = "$port" ] && used=1
		done
		[ -n "$used" ] && continue
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue # something listens there already
		fi
		redis_topology_ports+=("$port")
		echo "$port"
		return 0
	done
	return 1
}

# redis_topology_node NAME ARGS... starts redis-server with ARGS (a config
# file first, if any) on a free port in its own directory, waits until it
# answers PING, and sets redis_topology_node_port. {port} and {bus} in ARGS
# become the chosen port and a second free port (a cluster's bus). A port
# taken between choosing and binding it is retried on another.
redis_topology_node() {
	local name=$1
	shift
	local dir="$redis_topology_dir/$name" port bus pid a args
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(redis_topology_port) || return 1
		bus=$(redis_topology_port) || return 1
		args=()
		for a in "$@"; do
			a=${a//\{port\}/$port}
			args+=("${a//\{bus\}/$bus}")
		done
		(cd "$dir" && exec ${redis_topology_exec[@]+"${redis_topology_exec[@]}"} redis-server "${args[@]}" --port "$port" --bind 127.0.0.1 \
			--dir "$dir" --daemonize no --logfile "$dir/redis.log") &
		pid=$!
		redis_topology_pids+=("$pid")
		for _ in $(seq 100); do
			if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; then
				redis_topology_node_port=$port
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break # exited: port taken
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "could not start redis-server ($name):" >&2
	cat "$dir/redis.log" >&2 2>/dev/null || true
	return 1
}

# redis_topology_wait WHAT COMMAND... retries COMMAND for up to 30s.
redis_topology_wait() {
	local what=$1
	shift
	for _ in $(seq 300); do
		"$@" && return 0
		sleep 0.1
	done
	echo "timed out waiting for $what" >&2
	return 1
}

# start_redis_sentinel starts a master, two replicas of it and three
# sentinels (quorum 2, master down after 1s), and waits until the replicas
# are in sync and every sentinel knows the others: a failover can happen.
start_redis_sentinel() {
	: "${redis_topology_dir:?set redis_topology_dir to a temporary directory first}"
	local master_port i conf addrs=() replicas=()
	redis_sentinel_master=valohai-test
	redis_topology_node sentinel-master "${redis_topology_args[@]}" \
		--repl-diskless-sync yes --repl-diskless-sync-delay 0 || return 1
	master_port=$redis_topology_node_port
	for i in 1 2; do
		redis_topology_node "sentinel-replica$i" "${redis_topology_args[@]}" \
			--replicaof 127.0.0.1 "$master_port" || return 1
		replicas+=("$redis_topology_node_port")
	done
	for i in 1 2 3; do
		conf="$redis_topology_dir/sentinel$i.conf"
		cat >"$conf" <<-EOF
			sentinel monitor $redis_sentinel_master 127.0.0.1 $master_port 2
			sentinel down-after-milliseconds $redis_sentinel_master 1000
			sentinel failover-timeout $redis_sentinel_master 10000
		EOF
		redis_topology_node "sentinel$i" "$conf" --sentinel || return 1
		addrs+=("127.0.0.1:$redis_topology_node_port")
	done
	redis_topology_wait "the replicas to sync" redis_topology_synced "$master_port" || return 1
	local a
	for a in "${addrs[@]}"; do
		redis_topology_wait "sentinel $a to see the deployment" redis_topology_sentinel_ready "${a##*:}" || return 1
	done
	redis_sentinel_addrs=$(
		IFS=,
		echo "${addrs[*]}"
	)
}

redis_topology_synced() {
	local info
	info=$(redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r')
	[ "$(grep -c 'state=online' <<<"$info")" = 2 ]
}

redis_topology_sentinel_ready() {
	local out
	out=$(redis-cli -p "$1" sentinel master "$redis_sentinel_master" 2>/dev/null | tr -d '\r')
	[ "$(awk 'p=="num-slaves"{print} {p=$0}' <<<"$out")" = 2 ] &&
		[ "$(awk 'p=="num-other-sentinels"{print} {p=$0}' <<<"$out")" = 2 ]
}

# start_redis_cluster starts three cluster-enabled masters, joins them with
# redis-cli --cluster create, and waits until every node says cluster_state:ok.
start_redis_cluster() {
	: "${redis_topology_dir:?set redis_topology_dir to a temporary directory first}"
	local i addrs=() ports=() p
	for i in 1 2 3; do
		redis_topology_node "cluster$i" "${redis_topology_args[@]}" \
			--cluster-enabled yes --cluster-config-file nodes.conf \
			--cluster-port '{bus}' --cluster-node-timeout 2000 || return 1
		addrs+=("127.0.0.1:$redis_topology_node_port")
		ports+=("$redis_topology_node_port")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-yes >"$redis_topology_dir/cluster-create.log" 2>&1 || {
		echo "redis-cli --cluster create failed:" >&2
		cat "$redis_topology_dir/cluster-create.log" >&2
		return 1
	}
	for p in "${ports[@]}"; do
		redis_topology_wait "cluster node $p" redis_topology_cluster_ok "$p" || return 1
	done
	redis_cluster_addrs=$(
		IFS=,
		echo "${addrs[*]}"
	)
}

redis_topology_cluster_ok() {
	local info
	info=$(redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r')
	grep -q '^cluster_state:ok' <<<"$info" && grep -q '^cluster_known_nodes:3' <<<"$info"
}

# stop_redis_topology ends every process started here (SIGTERM, then
# SIGKILL after 5s) and removes redis_topology_dir.
stop_redis_topology() {
	local pid
	for pid in ${redis_topology_pids[@]+"${redis_topology_pids[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in ${redis_topology_pids[@]+"${redis_topology_pids[@]}"}; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	redis_topology_pids=()
	if [ -n "$redis_topology_dir" ]; then
		rm -rf "$redis_topology_dir"
	fi
}
