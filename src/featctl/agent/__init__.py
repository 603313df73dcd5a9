"""featctl's host agent: the code that runs ON the feature-store host.

featctl uploads this package to ``<base>/agent/featctl_agent/`` and runs it with
the host's Feast environment (or the host's ``python3`` before that exists)::

    PYTHONPATH=<base>/agent <python> -m featctl_agent <command> [options]

Rules for every module here:

* only the standard library, Feast and Feast's own dependencies (pandas,
  pyarrow, PyYAML, protobuf) are imported, and Feast/pandas only inside the
  functions that need them, so bookkeeping commands start in milliseconds;
* imports between agent modules are relative: on the host the package is
  called ``featctl_agent`` and nothing of featctl's client exists there.

Protocol (``cli.py``): a command prints exactly one JSON document on stdout and
exits 0; on failure it prints ``{"error": "<one line>", "kind": "input"|"feast"}``
and exits 1 (``input``: the request is wrong; ``feast``: Feast or the host
failed). ``lock`` is the exception: it prints one line, then holds the deploy
lock until its stdin closes (exit 3 when someone else holds it).

Shared stores: connection details reach Feast through ``${FEATCTL_*}``
variables in the release's feature_store.yaml. featctl keeps them on the host
in a 0600 file whose path arrives as ``FEATCTL_ENV_FILE``; importing this
package loads it, so every agent command, the supervisor and the servers it
starts see them (and nothing puts them on a command line).
"""

import os as _os


def _load_env_file() -> None:
    import sys as _sys

    # Spark's Python workers run the Feast environment's interpreter, not python3.
    _os.environ.setdefault("PYSPARK_PYTHON", _sys.executable)
    path = _os.environ.get("FEATCTL_ENV_FILE")
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isidentifier():
            _os.environ[name] = value


_load_env_file()
