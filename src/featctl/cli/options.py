"""Options shared by every command, written once as Annotated types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featctl.cli import complete

Repo = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        help="Feast feature repository to deploy or query [default: ./feature_repo; env FEATCTL_REPO]",
        show_default=False,
    ),
]
Workspace = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        help="Directory for featctl's state: Terraform state, keys, pinned host keys [default: ./.featctl; env FEATCTL_WORKSPACE]",
        show_default=False,
    ),
]
Config = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file [default: ./featctl.toml; env FEATCTL_CONFIG]", show_default=False),
]
Output = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", help="table, json or csv [default: table on a terminal, else json]", show_default=False
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show every step's detail on stderr.")]
Drivers = Annotated[
    list[str] | None,
    typer.Option(
        "--driver", "-d", help="Shorthand for --entity driver_id=ID; repeat or separate with commas.", show_default=False
    ),
]
Entities = Annotated[
    list[str] | None,
    typer.Option(
        "--entity",
        "-e",
        help="One entity row as KEY=VALUE (a composite key as a=1,b=x); repeatable. "
        "Values take the join key's type from the registry.",
        show_default=False,
    ),
]
Requests = Annotated[
    list[str] | None,
    typer.Option(
        "--request",
        "-r",
        help="Request data NAME=VALUE for on-demand views, the same for every row; repeatable.",
        show_default=False,
    ),
]
Features = Annotated[
    list[str] | None,
    typer.Option(
        "--features",
        "-f",
        help="Feature reference VIEW:FEATURE; repeat or separate with commas.",
        show_default=False,
        autocompletion=complete.features,
    ),
]
FullFeatureNames = Annotated[
    bool,
    typer.Option(
        "--full-feature-names",
        help="Name columns VIEW__FEATURE (Feast's full_feature_names): two views may then have a feature of the "
        "same name in one query.",
    ),
]
FeatureService = Annotated[
    str | None,
    typer.Option(
        "--feature-service",
        help="Feature service to read instead of --features.",
        show_default=False,
        autocompletion=complete.feature_services,
    ),
]
TakeOver = Annotated[
    bool,
    typer.Option(
        "--take-over",
        help="Change the deployment although another workspace made its last change (a workspace "
        "you moved, or whose original is gone). Never use it on a copy while the original is in use.",
    ),
]
Stores = Annotated[
    str | None,
    typer.Option(
        "--stores",
        help="Shared stores, comma-separated: redis (online store), postgres (registry and offline store), "
        "spark (offline store and materialization engine, local mode). "
        "Terraform runs them (local: on loopback; yandex: managed clusters) [default: none, files on the host; "
        "env FEATCTL_STORES]",
        show_default=False,
    ),
]
KeepHostData = Annotated[
    bool,
    typer.Option(
        "--keep-host-data",
        help="A data file changed on the host since featctl uploaded it (Feast appends offline pushes to it) "
        "and changed here too: keep the host's copy and upload nothing for it. Unchanged here, the host's copy "
        "is always kept.",
    ),
]
OverwriteData = Annotated[
    bool,
    typer.Option(
        "--overwrite-data",
        help="Replace data files the host changed since featctl uploaded them (offline pushes) with this "
        "machine's copies: the rows written on the host are lost.",
    ),
]


def data_policy(keep: bool, overwrite: bool) -> str:
    """What deploy does with data files the host changed: ask (stop on a conflict), keep, overwrite."""
    from featctl.errors import UsageError

    if keep and overwrite:
        raise UsageError("--keep-host-data and --overwrite-data exclude each other: give one")
    return "keep" if keep else "overwrite" if overwrite else "ask"


Hosts = Annotated[
    int | None,
    typer.Option(
        "--hosts",
        help="Serving hosts, each with a feature server on the same release (more than 1 needs "
        "--stores redis,postgres) [default: 1; env FEATCTL_HOSTS]",
        show_default=False,
    ),
]
