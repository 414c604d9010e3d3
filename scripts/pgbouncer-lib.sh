# A private PgBouncer in transaction mode (Debian's pgbouncer) in front of a PostgreSQL
# server, for scripts/pgbouncer-tests and scripts/bench-pgbouncer (sourced, not run).
#
#   pgbouncer_start DIR HOST PORT USER PASSWORD POOL
#
# writes DIR/pgbouncer.ini and DIR/users.txt (trust), starts pgbouncer (as nobody when run as
# root: it refuses root) with its log in DIR/pgbouncer.log, and sets `pgbouncer_listen` (its
# port) and `pgbouncer_pid`; returns 1, the log on standard error, when it cannot start.
# `pgbouncer_stop` stops it. `pgbouncer_bin` is the binary (empty when not installed).

pgbouncer_bin="$(command -v pgbouncer || true)"
if [ -z "$pgbouncer_bin" ] && [ -x /usr/sbin/pgbouncer ]; then pgbouncer_bin=/usr/sbin/pgbouncer; fi
pgbouncer_pid=""
pgbouncer_listen=""

pgbouncer_start() {
  local dir="$1" host="$2" port="$3" user="$4" password="$5" pool="$6"
  local as=() candidate try
  if [ "$(id -u)" -eq 0 ]; then as=(-u nobody); fi
  chmod 755 "$dir"
  printf '"%s" "%s"\n' "$user" "$password" >"$dir/users.txt"
  # A port below the kernel's ephemeral range (ip_local_port_range, 32768 and up by
  # default), which the machine's own outgoing connections do not take between the check
  # and the bind; another port when PgBouncer still cannot listen there.
  for _ in 1 2 3 4 5; do
    candidate=""
    for try in $(shuf -i 20000-32000 -n 50); do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then candidate="$try"; break; fi
    done
    [ -n "$candidate" ] || { echo "no free port for pgbouncer" >&2; return 1; }
    printf '%s\n' \
      "[databases]" \
      "* = host=$host port=$port" \
      "" \
      "[pgbouncer]" \
      "listen_addr = 127.0.0.1" \
      "listen_port = $candidate" \
      "unix_socket_dir =" \
      "auth_type = trust" \
      "auth_file = $dir/users.txt" \
      "pool_mode = transaction" \
      "default_pool_size = $pool" \
      "max_client_conn = 1000" \
      "server_tls_sslmode = disable" >"$dir/pgbouncer.ini"
    chmod 644 "$dir/pgbouncer.ini" "$dir/users.txt"
    "$pgbouncer_bin" "${as[@]}" "$dir/pgbouncer.ini" 2>"$dir/pgbouncer.log" &
    pgbouncer_pid=$!
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        pgbouncer_listen="$candidate"
        return 0
      fi
      kill -0 "$pgbouncer_pid" 2>/dev/null || break
      sleep 0.1
    done
    pgbouncer_stop
    if ! grep -q "cannot listen\|nowhere to listen" "$dir/pgbouncer.log"; then
      cat "$dir/pgbouncer.log" >&2
      return 1
    fi
    echo "pgbouncer could not listen on 127.0.0.1:$candidate; trying another port" >&2
  done
  cat "$dir/pgbouncer.log" >&2
  return 1
}

pgbouncer_stop() {
  if [ -n "$pgbouncer_pid" ]; then
    kill "$pgbouncer_pid" 2>/dev/null || true
    wait "$pgbouncer_pid" 2>/dev/null || true
  fi
  pgbouncer_pid=""
}
