"""The life of a deployment, one verb per module: deploy (and the release it
builds), plan, rollback, materialize, status, destroy and the small
housekeeping verbs. Every verb takes a Session, returns a typed result or
raises a FeatctlError, and never prints or exits: the CLI does that."""
