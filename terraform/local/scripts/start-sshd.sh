#!/bin/sh
# Start the local target's sshd. Idempotent: an sshd already running from this
# state directory is left alone. Never prints key material.
set -eu

: "${STATE_DIR:?}" "${LISTEN_ADDRESS:?}" "${PORT:?}" "${HOST_KEY:?}" "${AUTHORIZED_KEY:?}" "${SSH_USER:?}" "${REMOTE_BASE_DIR:?}"
SSHD="${SSHD:-/usr/sbin/sshd}"

if [ ! -x "$SSHD" ]; then
  echo "featctl local target: OpenSSH server not found at $SSHD (install the openssh-server package)" >&2
  exit 1
fi
if [ ! -f "$HOST_KEY" ]; then
  echo "featctl local target: host key $HOST_KEY does not exist" >&2
  exit 1
fi

umask 077
mkdir -p "$STATE_DIR" "$REMOTE_BASE_DIR"
pidfile="$STATE_DIR/sshd.pid"

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  exit 0
fi

# sshd running as root insists on its privilege-separation directory.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
fi

printf '%s\n' "$AUTHORIZED_KEY" > "$STATE_DIR/authorized_keys.tmp"
mv "$STATE_DIR/authorized_keys.tmp" "$STATE_DIR/authorized_keys"

# sshd_config arguments in double quotes, with \ and " escaped: paths may hold
# spaces and quotes. AuthorizedKeysFile also expands %-tokens: % becomes %%.
qs() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
cat > "$STATE_DIR/sshd_config.tmp" <<CONF
ListenAddress $LISTEN_ADDRESS:$PORT
HostKey $(qs "$HOST_KEY")
PidFile $(qs "$pidfile")
AuthorizedKeysFile $(qs "$(printf '%s' "$STATE_DIR/authorized_keys" | sed 's/%/%%/g')")
AllowUsers $SSH_USER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding local
PermitTunnel no
MaxSessions 32
MaxStartups 64:30:128
ClientAliveInterval 30
LogLevel ERROR
Subsystem sftp internal-sftp
CONF
if [ -n "${UV_PATH:-}" ] && [ -x "$UV_PATH" ]; then
  # The local host is this machine: its sessions may use featctl's own uv.
  printf 'SetEnv %s\n' "$(qs "FEATCTL_HOST_UV=$UV_PATH")" >> "$STATE_DIR/sshd_config.tmp"
fi
mv "$STATE_DIR/sshd_config.tmp" "$STATE_DIR/sshd_config"

if ! "$SSHD" -t -f "$STATE_DIR/sshd_config" 2>"$STATE_DIR/sshd_check.log"; then
  echo "featctl local target: sshd rejected its configuration: $(head -n 1 "$STATE_DIR/sshd_check.log")" >&2
  exit 1
fi

rm -f "$pidfile"
"$SSHD" -f "$STATE_DIR/sshd_config" -E "$STATE_DIR/sshd.log"

# sshd daemonizes after binding; wait briefly for its pid file.
i=0
while [ ! -s "$pidfile" ]; do
  i=$((i + 1))
  if [ "$i" -gt 50 ]; then
    echo "featctl local target: sshd did not start on $LISTEN_ADDRESS:$PORT: $(tail -n 1 "$STATE_DIR/sshd.log" 2>/dev/null)" >&2
    exit 1
  fi
  sleep 0.1
done
