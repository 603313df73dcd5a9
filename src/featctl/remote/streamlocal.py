"""paramiko's missing channel kind: OpenSSH's ``direct-streamlocal@openssh.com``
(a forward to a Unix socket on the SSH server, what ``ssh -L x:/remote.sock``
opens). featctl's servers on a host listen on Unix sockets only, so every
query and forward reaches them this way (``Connection.open_unix``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko


def open_streamlocal(transport: paramiko.Transport, path: str, timeout: float) -> paramiko.Channel:
    """Open a ``direct-streamlocal@openssh.com`` channel: paramiko opens only
    direct-tcpip forwards, so this is its ``Transport.open_channel`` with the
    streamlocal request body (socket path, reserved string, reserved uint32;
    OpenSSH's PROTOCOL, section 2.4). Pinned by tests against a real sshd."""
    import threading

    from paramiko.channel import Channel
    from paramiko.common import cMSG_CHANNEL_OPEN
    from paramiko.message import Message
    from paramiko.ssh_exception import SSHException

    t = transport
    if not t.active:
        raise SSHException("SSH session not active")
    with t.lock:
        window_size = t._sanitize_window_size(None)
        max_packet_size = t._sanitize_packet_size(None)
        chanid = t._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string("direct-streamlocal@openssh.com")
        m.add_int(chanid)
        m.add_int(window_size)
        m.add_int(max_packet_size)
        m.add_string(path)
        m.add_string("")
        m.add_int(0)
        chan = Channel(chanid)
        t._channels.put(chanid, chan)
        t.channel_events[chanid] = event = threading.Event()
        t.channels_seen[chanid] = True
        chan._set_transport(t)
        chan._set_window(window_size, max_packet_size)
    t._send_user_message(m)
    deadline = time.monotonic() + timeout
    while True:
        event.wait(0.1)
        if not t.active:
            raise t.get_exception() or SSHException("Unable to open channel.")
        if event.is_set():
            break
        if time.monotonic() > deadline:
            raise SSHException("Timeout opening channel.")
    opened = t._channels.get(chanid)
    if opened is not None:
        return opened
    raise t.get_exception() or SSHException("Unable to open channel.")
