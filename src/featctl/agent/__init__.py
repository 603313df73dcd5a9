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
"""
