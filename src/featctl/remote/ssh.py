"""The paramiko adapter: every SSH and SFTP call featctl makes goes through here.

Host keys are pinned: the client loads featctl's own known_hosts and uses
paramiko's RejectPolicy, so an unknown or changed key is refused before any
command runs. Remote commands drain stdout and stderr together while they run
(reading the exit status first deadlocks once a stream fills its window) and
have timeouts.
"""

from __future__ import annotations

import contextlib
import posixpath
import select
import shlex
import socket
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featctl.errors import CommandTimedOut, HostKeyMismatch, RemoteCommandError, SSHError
from featctl.remote.keys import known_hosts_name

if TYPE_CHECKING:
    import paramiko

    from featctl.workspace import Deployment, Workspace


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    #: featctl's own key; None means the user's keys (ssh-agent, ~/.ssh/id_*).
    key_path: Path | None
    known_hosts: Path
    #: The deployment's directory on the host: its servers' Unix sockets live
    #: under ``run/s/`` there (``Layout.socket``).
    base: str = ""

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def endpoint_for(workspace: Workspace, record: Deployment) -> Endpoint:
    """Where and how to log in to the deployment's host, with the workspace's pins."""
    if record.target == "ssh":  # the user's own key (or ssh-agent / ~/.ssh)
        key = Path(record.identity).expanduser() if record.identity else None
    else:
        key = workspace.client_key
    return Endpoint(record.host, int(record.port), record.user, key, workspace.known_hosts, record.remote_base_dir)


@dataclass(frozen=True)
class Result:
    command: str
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def last_error_line(self) -> str:
        lines = [ln.strip() for ln in self.stderr.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.exit_status}"


class Connection:
    """One SSH connection to the host, reused for every command of a featctl run."""

    def __init__(self, client: paramiko.SSHClient, endpoint: Endpoint) -> None:
        self._client = client
        self.endpoint = endpoint
        self.base = endpoint.base  # the deployment's directory on the host (run/s: sockets)
        self._sftp: paramiko.SFTPClient | None = None

    # lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Best effort: closing a dead connection raises, hiding the error being reported."""
        for close in ([self._sftp.close] if self._sftp is not None else []) + [self._client.close]:
            with contextlib.suppress(Exception):
                close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> paramiko.Transport:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise SSHError(f"the SSH connection to {self.endpoint} was lost")
        return transport

    # commands ------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        timeout: float = 600.0,
        check: bool = True,
        stdin: bytes | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run ``command`` on the host; both streams are read while it runs, so output of
        any size cannot stall it. ``on_line`` receives stdout/stderr lines as they come."""
        try:
            chan = self.transport.open_session(timeout=30)
            chan.set_combine_stderr(False)
            chan.exec_command(command)
        except SSHError:
            raise
        except Exception as exc:  # paramiko raises several unrelated types
            raise SSHError(f"cannot start a command on {self.endpoint}: {exc}") from None
        out, err = bytearray(), bytearray()
        pending = b""
        deadline = time.monotonic() + timeout
        try:
            if stdin is not None:
                chan.sendall(stdin)
                chan.shutdown_write()
            while True:
                got = False
                while chan.recv_ready():
                    chunk = chan.recv(65536)
                    out += chunk
                    got = True
                    if on_line:
                        pending = _emit_lines(pending + chunk, on_line)
                while chan.recv_stderr_ready():
                    chunk = chan.recv_stderr(65536)
                    err += chunk
                    got = True
                    if on_line:
                        pending = _emit_lines(pending + chunk, on_line)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    if chan.eof_received or chan.closed:
                        break
                if not got:
                    if time.monotonic() > deadline:
                        raise CommandTimedOut(
                            f"command timed out after {timeout:.0f} s on {self.endpoint}: {_short(command)}"
                        )
                    if not self.transport.is_active():
                        raise SSHError(f"the SSH connection to {self.endpoint} was lost")
                    select.select([chan], [], [], 0.05)
            status = chan.recv_exit_status()
        except _remote_errors() as exc:
            raise SSHError(f"the SSH connection to {self.endpoint} failed: {exc or type(exc).__name__}") from None
        finally:
            chan.close()
        result = Result(command, status, bytes(out), bytes(err))
        if check and status != 0:
            raise RemoteCommandError(f"remote command failed ({_short(command)}): {result.last_error_line()}")
        return result

    # files -----------------------------------------------------------------
    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except Exception as exc:
                raise SSHError(f"cannot open SFTP on {self.endpoint}: {exc}") from None
        return self._sftp

    def makedirs(self, path: str) -> None:
        parts: list[str] = []
        cur = path
        while cur not in ("", "/"):
            parts.append(cur)
            cur = posixpath.dirname(cur)
        for p in reversed(parts):
            try:
                if not stat.S_ISDIR(self.sftp.stat(p).st_mode or 0):
                    raise SSHError(f"{p} on {self.endpoint} exists and is not a directory")
            except FileNotFoundError:
                self.sftp.mkdir(p)

    def put_files(
        self,
        files: Iterable[tuple[Path, str]],
        *,
        on_file: Callable[[str, int], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Upload (local path, remote path) pairs; each lands atomically (tmp + rename).
        ``on_bytes`` hears every chunk sent (for a progress bar)."""
        made: set[str] = set()
        total = 0
        try:
            for local, remote in files:
                parent = posixpath.dirname(remote)
                if parent not in made:
                    self.makedirs(parent)
                    made.add(parent)
                tmp = f"{remote}.featctl-tmp"
                sent = [0]

                def chunk(done: int, _size: int, sent: list[int] = sent) -> None:
                    if on_bytes is not None:
                        on_bytes(done - sent[0])
                    sent[0] = done

                self.sftp.put(str(local), tmp, callback=chunk)
                self.sftp.chmod(tmp, local.stat().st_mode & 0o777)
                self.sftp.posix_rename(tmp, remote)
                size = local.stat().st_size
                total += size
                if on_file:
                    on_file(remote, size)
        except SSHError:
            raise
        except _remote_errors() as exc:
            raise SSHError(f"upload to {self.endpoint} failed: {exc or type(exc).__name__}") from None
        return total

    def put_text(self, remote: str, text: str, mode: int = 0o644) -> None:
        try:
            self.makedirs(posixpath.dirname(remote))
            tmp = f"{remote}.featctl-tmp"
            with self.sftp.open(tmp, "w") as fh:
                fh.chmod(mode)  # before the content: a secret is never readable by others
                fh.write(text.encode())
            self.sftp.posix_rename(tmp, remote)
        except SSHError:
            raise
        except _remote_errors() as exc:
            raise SSHError(f"writing {remote} on {self.endpoint} failed: {exc or type(exc).__name__}") from None

    def get_file(self, remote: str, local: Path) -> None:
        try:
            self.sftp.get(remote, str(local))
        except _remote_errors() as exc:
            raise SSHError(f"download of {remote} from {self.endpoint} failed: {exc or type(exc).__name__}") from None

    # tunnels ---------------------------------------------------------------
    def open_channel(self, host: str, port: int, timeout: float = 10.0) -> paramiko.Channel:
        """A direct-tcpip channel to host:port as seen from the SSH server."""
        try:
            return self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
        except SSHError:
            raise
        except Exception as exc:
            raise SSHError(f"cannot open a tunnel to {host}:{port} on {self.endpoint}: {exc}") from None

    def open_unix(self, path: str, timeout: float = 10.0) -> paramiko.Channel:
        """A channel to the Unix socket ``path`` on the host (remote/streamlocal.py)."""
        try:
            from featctl.remote.streamlocal import open_streamlocal

            return open_streamlocal(self.transport, path, timeout)
        except SSHError:
            raise
        except Exception as exc:
            raise SSHError(f"cannot open a tunnel to {path} on {self.endpoint}: {exc or type(exc).__name__}") from None

    def open_server(self, port: int | str, timeout: float = 10.0) -> paramiko.Channel:
        """A channel to the deployment's server ``port``: its Unix socket in the
        0700 ``run/s`` on the host (only the deployment's user reaches it)."""
        from featctl.remote.layout import Layout

        if not self.base:
            raise SSHError(f"the deployment's directory on {self.endpoint} is unknown; run `featctl deploy`")
        return self.open_unix(Layout(self.base).socket(port), timeout)


def _remote_errors() -> tuple[type[BaseException], ...]:
    """What a dropped connection raises: paramiko's own errors are not OSErrors."""
    import paramiko

    return (OSError, EOFError, paramiko.SSHException)


def _emit_lines(buf: bytes, on_line: Callable[[str], None]) -> bytes:
    *lines, rest = buf.split(b"\n")
    for line in lines:
        text = line.decode(errors="replace").rstrip("\r")
        if text:
            on_line(text)
    return rest


def _short(command: str, limit: int = 80) -> str:
    first = command.strip().splitlines()[0] if command.strip() else command
    return first if len(first) <= limit else first[: limit - 3] + "..."


def q(value: str) -> str:
    """Quote one argument for the remote POSIX shell."""
    return shlex.quote(value)


def connect(endpoint: Endpoint, *, timeout: float = 15.0) -> Connection:
    """Connect with the pinned host key only; refuse unknown or changed keys."""
    import logging

    import paramiko

    # paramiko logs refused channels and the like itself; featctl reports
    # errors its own way, once, on stderr.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if not endpoint.known_hosts.exists():
        raise SSHError(f"no pinned host key for {endpoint}", hint="run `featctl deploy` to create and pin it")
    client.load_host_keys(str(endpoint.known_hosts))
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=str(endpoint.key_path) if endpoint.key_path else None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=endpoint.key_path is None,
            look_for_keys=endpoint.key_path is None,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        from featctl.remote.keys import fingerprint

        got = f"{exc.key.get_name()} {exc.key.get_base64()}"
        raise HostKeyMismatch(
            f"host key of {known_hosts_name(endpoint.host, endpoint.port)} changed: "
            f"got {fingerprint(got)}, pinned {fingerprint(f'{exc.expected_key.get_name()} {exc.expected_key.get_base64()}')}; "
            "refusing to connect",
            hint="if the host was rebuilt on purpose, run `featctl destroy` and deploy again",
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        raise SSHError(f"{endpoint} refused featctl's key") from None
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise HostKeyMismatch(
                f"{endpoint} is not in featctl's pinned host keys; refusing to trust an unknown host key"
            ) from None
        raise SSHError(f"SSH to {endpoint} failed: {exc}") from None
    except (TimeoutError, OSError, EOFError) as exc:
        client.close()
        raise SSHError(f"cannot reach {endpoint}: {getattr(exc, 'strerror', None) or exc}") from None
    return Connection(client, endpoint)


def probe_host_key(host: str, port: int, *, timeout: float = 15.0) -> str:
    """The host's public key as an OpenSSH line, read without logging in or trusting it."""
    import logging

    import paramiko

    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SSHError(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.get_security_options().key_types = [
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "rsa-sha2-256",
        ]
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"SSH handshake with {host}:{port} failed: {exc}") from None
    finally:
        transport.close()


def wait_for_ssh(endpoint: Endpoint, *, deadline_seconds: float, interval: float = 0.5) -> Connection:
    """Retry connecting until SSH answers or ``deadline_seconds`` pass.

    A changed host key is not retried: it is refused at once.
    """
    deadline = time.monotonic() + deadline_seconds
    last: Exception | None = None
    while True:
        try:
            return connect(endpoint, timeout=min(15.0, max(1.0, deadline_seconds)))
        except HostKeyMismatch:
            raise
        except SSHError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise SSHError(f"SSH on {endpoint} did not answer within {deadline_seconds:.0f} s (last error: {last})")
        time.sleep(interval)
