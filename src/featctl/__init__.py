"""featctl: deploy a Feast feature repository to a host and query it."""

__version__ = "0.1.0"

#: The Feast release every deployment installs on the host. Pinned exactly:
#: the feature repository, the host environment and the tests agree on it.
FEAST_VERSION = "0.67.0"
