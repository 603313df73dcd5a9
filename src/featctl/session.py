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
    _conn: Connection | None = None
    _server: FeatureServer | None = None

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
        """The SSH connection to the host, made on first use; the host's copy of
        featctl's agent is brought up to date with this client's (one digest check)."""
        if self._conn is None:
            from featctl.remote.agent import install_agent
            from featctl.remote.ssh import connect

            record = record or self.deployment()
            conn = connect(self.endpoint(record))
            try:
                install_agent(conn, self.layout(record))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def adopt(self, conn: Connection) -> None:
        self.close()
        self._conn = conn

    def server(self, record: Deployment | None = None) -> FeatureServer:
        if self._server is None:
            from featctl.query.server import FeatureServer

            record = record or self.deployment()
            self._server = FeatureServer(self.connection(record), int(record.server_port))
        return self._server

    def query_server(self, record: Deployment) -> FeatureServer:
        """The feature server for a query: through the workspace's tunnel process
        when one runs (no paramiko import, no SSH handshake), else over a direct
        SSH connection, starting a tunnel process for the next query."""
        if self._server is None:
            import os

            from featctl.query import tunnel
            from featctl.query.server import FeatureServer

            if os.environ.get("FEATCTL_NO_TUNNEL") != "1":
                path = tunnel.available(self.workspace.root)
                if path is not None:
                    self._server = FeatureServer(None, int(record.server_port), tunnel=path)
                    return self._server
                tunnel.start_background(self.workspace.root)
        return self.server(record)

    def direct_server(self, record: Deployment) -> FeatureServer:
        """Drop a tunnelled client and talk over a direct SSH connection."""
        self.close_server()
        return self.server(record)

    def close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def close(self) -> None:
        self.close_server()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
