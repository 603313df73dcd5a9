"""The state one featctl command works with: settings, workspace, the
deployment record and (lazily) the SSH connection to its host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from featctl.config import Settings
from featctl.errors import NotDeployedError
from featctl.workspace import Deployment, Workspace

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer
    from featctl.remote.layout import Layout
    from featctl.remote.ssh import Connection, Endpoint


class Progress(Protocol):
    """A running count (bytes uploaded, files done) the CLI may draw as a bar."""

    def advance(self, amount: int) -> None: ...

    def close(self) -> None: ...


class Reporter(Protocol):
    """How the core tells the user what it is doing (the CLI draws it)."""

    def step(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    def detail(self, message: str) -> None: ...

    def progress(self, label: str, total: int, unit: str = "bytes") -> Progress: ...


class NoProgress:
    def advance(self, amount: int) -> None:
        pass

    def close(self) -> None:
        pass


class SilentReporter:
    def step(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def progress(self, label: str, total: int, unit: str = "bytes") -> Progress:
        return NoProgress()


@dataclass
class Session:
    settings: Settings
    reporter: Reporter = field(default_factory=SilentReporter)
    #: Asks the user a yes/no question; None where nobody can answer (no terminal).
    confirm: Callable[[str], bool] | None = None
    _conns: dict[int, Connection] = field(default_factory=dict)
    _servers: dict[int, FeatureServer] = field(default_factory=dict)
    _batch: FeatureServer | None = None

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.settings.workspace)

    def deployment(self) -> Deployment:
        record = self.workspace.require()
        if not record.host:
            raise NotDeployedError(
                f"the deployment in {self.workspace.root} has no host yet",
                hint="run `featctl deploy`",
            )
        return record

    def endpoint(self, record: Deployment) -> Endpoint:
        from featctl.remote.ssh import endpoint_for

        return endpoint_for(self.workspace, record)

    def layout(self, record: Deployment) -> Layout:
        from featctl.remote.layout import DEFAULT_ENV, Layout

        return Layout(record.remote_base_dir, record.env_name or DEFAULT_ENV)

    def connection(self, record: Deployment | None = None) -> Connection:
        """The SSH connection to the (first) host, made on first use; the host's
        copy of featctl's agent is brought up to date with this client's (one
        digest check)."""
        return self.connection_to(record or self.deployment(), 0)

    def connection_to(self, record: Deployment, index: int) -> Connection:
        """The SSH connection to host ``index`` of several (``record.for_host``)."""
        if index not in self._conns:
            from featctl.remote.agent import install_agent
            from featctl.remote.ssh import connect

            view = record.for_host(index)
            conn = connect(self.endpoint(view))
            try:
                install_agent(conn, self.layout(view))
            except BaseException:
                conn.close()
                raise
            self._conns[index] = conn
        conn = self._conns[index]
        if not conn.base:  # adopted before the host's directory was known (a first deploy)
            conn.base = record.for_host(index).remote_base_dir
        return conn

    def adopt(self, conn: Connection, index: int = 0) -> None:
        self.close_host(index)
        self._conns[index] = conn

    def server(self, record: Deployment | None = None, index: int = 0) -> FeatureServer:
        if index not in self._servers:
            from featctl.query.server import FeatureServer

            record = record or self.deployment()
            view = record.for_host(index)
            self._servers[index] = FeatureServer(self.connection_to(record, index), int(view.server_port))
        return self._servers[index]

    def query_server(self, record: Deployment, index: int = 0) -> FeatureServer:
        """The feature server of host ``index`` for a query: through the
        workspace's tunnel process when one runs (no paramiko import, no SSH
        handshake), else over a direct SSH connection, starting a tunnel process
        for the next query."""
        if index not in self._servers:
            import os

            from featctl.query import tunnel
            from featctl.query.server import FeatureServer

            if os.environ.get("FEATCTL_NO_TUNNEL") != "1":
                path = tunnel.available(self.workspace.root, index)
                if path is not None:
                    self._servers[index] = FeatureServer(None, int(record.for_host(index).server_port), tunnel=path)
                    return self._servers[index]
                tunnel.start_background(self.workspace.root, index)
        return self.server(record, index)

    def batch_server(self, record: Deployment, *, direct: bool = False) -> FeatureServer:
        """Host 0's batch server (historical and batch scoring: a process of its
        own beside the serving feature server), through the tunnel process when
        one runs, else over SSH."""
        from featctl.query import tunnel
        from featctl.query.server import FeatureServer

        if self._batch is not None and not (direct and self._batch.tunnelled):
            return self._batch
        if self._batch is not None:
            self._batch.close()
        port = int(record.server_port)
        path = None if direct else tunnel.available(self.workspace.root, 0)
        if path is not None:
            self._batch = FeatureServer(None, port, tunnel=path, batch=True)
        else:
            self._batch = FeatureServer(self.connection_to(record, 0), port, batch=True)
        return self._batch

    def direct_server(self, record: Deployment, index: int = 0) -> FeatureServer:
        """Drop a tunnelled client and talk over a direct SSH connection."""
        self.close_server(index)
        return self.server(record, index)

    def close_server(self, index: int | None = None) -> None:
        if self._batch is not None and index in (None, 0):
            self._batch.close()
            self._batch = None
        for i in [index] if index is not None else list(self._servers):
            server = self._servers.pop(i, None)
            if server is not None:
                server.close()

    def close_host(self, index: int) -> None:
        self.close_server(index)
        conn = self._conns.pop(index, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self.close_server()
        for index in list(self._conns):
            self.close_host(index)
