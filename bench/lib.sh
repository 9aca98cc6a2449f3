# bench/lib.sh: pieces shared by the bench scripts (sourced, not run).

# start_origin TMPDIR ADDR: nginx serving TMPDIR/www on ADDR (files are the
# caller's), access log off, unlimited keep-alive.  Appends its pid to the
# caller's `pids` array.  nginx started as root serves as nobody, so the
# files must be world-readable.
start_origin() {
  local tmp=$1 addr=$2
  chmod -R a+rX "$tmp/www"
  cat >"$tmp/nginx.conf" <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/cbt; proxy_temp_path $tmp/pt;
  fastcgi_temp_path $tmp/ft; uwsgi_temp_path $tmp/ut; scgi_temp_path $tmp/st;
  server { listen $addr; root $tmp/www; }
}
NGX
  nginx -c "$tmp/nginx.conf" & pids+=($!)
}
