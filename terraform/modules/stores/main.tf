# featctl's own store servers for stacks without managed ones (terraform/local,
# and any other built-in-only stack): a real redis-server and a real PostgreSQL
# cluster on this machine, serving TLS only, like the managed services of a
# cloud. featctl generates the CA and the server certificate (input `tls`) and
# the passwords (input `store_password_files`); the calling stack puts the CA
# certificate where its hosts read it (input `ca_file`, reported back in the
# `stores` output, the same contract as terraform/yandex's).
#
# - Redis: `port 0` (no plain-text port), `tls-port`, `tls-auth-clients no`
#   (clients log in with the password, not a certificate), requirepass.
# - PostgreSQL: `ssl = on`, pg_hba with `hostssl` (scram-sha-256) from
#   client_cidr only and `hostnossl ... reject`: a connection without TLS is
#   refused.
#
# - Both run under featctl's supervisor (the agent's supervise.py, stdlib only),
#   which starts a killed or crashed server again within seconds on the same
#   data (Redis' append-only file, PostgreSQL's WAL).
#
# Two resources per store: `<store>` is the data's lifetime (destroying it stops
# the server and removes the data directory), `<store>_server` is the running
# server alone (replacing it restarts the server on the same data: featctl
# does that when the server died, and a new certificate restarts it too).

locals {
  scripts  = abspath("${path.module}/scripts")
  redis    = contains(var.stores, "redis")
  postgres = contains(var.stores, "postgres")
  host     = coalesce(var.host_address, var.listen_address)
  tls      = var.tls == null ? { ca_cert = "", server_cert = "", server_key = "", digest = "" } : var.tls

  # featctl's agent package (featctl_agent/), copied here by featctl beside the
  # scripts: the servers run under its supervisor (supervise.py), which starts
  # a server that died again. Absent (the module run by hand): no supervisor.
  agent_dir = abspath("${path.module}/agent")
}

resource "terraform_data" "redis" {
  count = local.redis ? 1 : 0

  triggers_replace = [var.store_dirs["redis"]]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["redis"]
  }

  provisioner "local-exec" {
    command = "mkdir -p \"$DATA_DIR\" && chmod 700 \"$DATA_DIR\""
    environment = {
      DATA_DIR = var.store_dirs["redis"]
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-redis.sh"
    environment = {
      DATA_DIR = self.input.data_dir
    }
  }
}

resource "terraform_data" "redis_server" {
  count = local.redis ? 1 : 0

  triggers_replace = [
    terraform_data.redis[0].id,
    var.store_ports["redis"],
    var.store_password_files["redis"],
    var.redis_server_path,
    var.listen_address,
    var.restart_on,
    local.tls.digest,
    # A server an earlier featctl started without the supervisor is restarted
    # under it once (on its data).
    "supervised",
  ]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["redis"]
  }

  lifecycle {
    precondition {
      condition     = var.tls != null
      error_message = "The store servers serve TLS only: the tls input (CA and server certificate) is required."
    }
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-redis.sh"
    environment = {
      DATA_DIR       = var.store_dirs["redis"]
      PORT           = tostring(var.store_ports["redis"])
      PASSWORD_FILE  = var.store_password_files["redis"]
      REDIS_SERVER   = var.redis_server_path
      LISTEN_ADDRESS = var.listen_address
      AGENT_DIR      = local.agent_dir
      TLS_CA         = local.tls.ca_cert
      TLS_CERT       = local.tls.server_cert
      TLS_KEY        = local.tls.server_key
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-redis.sh"
    environment = {
      DATA_DIR  = self.input.data_dir
      KEEP_DATA = "1"
    }
  }
}

resource "terraform_data" "postgres" {
  count = local.postgres ? 1 : 0

  triggers_replace = [var.store_dirs["postgres"], var.postgres_bin_dir]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["postgres"]
    bin_dir  = var.postgres_bin_dir
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-postgres.sh"
    environment = {
      DATA_DIR = self.input.data_dir
      PG_BIN   = self.input.bin_dir
    }
  }
}

resource "terraform_data" "postgres_server" {
  count = local.postgres ? 1 : 0

  triggers_replace = [
    terraform_data.postgres[0].id,
    var.store_ports["postgres"],
    var.store_password_files["postgres"],
    var.listen_address,
    var.client_cidr,
    var.restart_on,
    local.tls.digest,
    "supervised",
  ]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["postgres"]
    bin_dir  = var.postgres_bin_dir
  }

  lifecycle {
    precondition {
      condition     = var.tls != null
      error_message = "The store servers serve TLS only: the tls input (CA and server certificate) is required."
    }
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-postgres.sh"
    environment = {
      DATA_DIR       = var.store_dirs["postgres"]
      PORT           = tostring(var.store_ports["postgres"])
      PASSWORD_FILE  = var.store_password_files["postgres"]
      PG_BIN         = var.postgres_bin_dir
      DATABASE       = var.postgres_database
      DB_USER        = var.postgres_user
      LISTEN_ADDRESS = var.listen_address
      AGENT_DIR      = local.agent_dir
      CLIENT_CIDR    = var.client_cidr
      TLS_CA         = local.tls.ca_cert
      TLS_CERT       = local.tls.server_cert
      TLS_KEY        = local.tls.server_key
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-postgres.sh"
    environment = {
      DATA_DIR  = self.input.data_dir
      PG_BIN    = self.input.bin_dir
      KEEP_DATA = "1"
    }
  }
}
