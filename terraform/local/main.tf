# The local "VMs": one OpenSSH sshd per host on a loopback address, each with
# its own host key, authorized key and directory, and the shared stores a
# deployment may ask for (a real redis-server, a real PostgreSQL cluster),
# started by Terraform on loopback with passwords featctl generated.
#
# Per host, two resources, so that a dead sshd can be restarted without
# touching what runs on the "machine": `host` is the machine's lifetime
# (destroying it stops every process the deployment started under its
# directory), `sshd` is the SSH daemon alone (replacing it restarts only sshd).

locals {
  scripts = abspath("${path.module}/scripts")
  hosts = [
    for i, key in var.host_keys : {
      private_key_path = key.private_key_path
      public_key       = key.public_key
      state_dir        = var.host_dirs[i].state_dir
      remote_base_dir  = var.host_dirs[i].remote_base_dir
      port             = var.host_dirs[i].port
    }
  ]
  redis    = contains(var.stores, "redis")
  postgres = contains(var.stores, "postgres")
}

moved {
  from = terraform_data.host
  to   = terraform_data.host[0]
}

moved {
  from = terraform_data.sshd
  to   = terraform_data.sshd[0]
}

resource "terraform_data" "host" {
  count = length(local.hosts)

  triggers_replace = [
    local.hosts[count.index].state_dir,
    local.hosts[count.index].remote_base_dir,
  ]

  # Destroy-time provisioners may only read `self`, so everything the stop
  # script needs travels in `input`.
  input = {
    scripts         = local.scripts
    state_dir       = local.hosts[count.index].state_dir
    remote_base_dir = local.hosts[count.index].remote_base_dir
  }

  # Paths travel in the environment and scripts run through an interpreter, so
  # a workspace path with spaces or quotes is never parsed by a shell.
  provisioner "local-exec" {
    command = "mkdir -p \"$STATE_DIR\" \"$REMOTE_BASE_DIR\" && chmod 700 \"$STATE_DIR\""
    environment = {
      STATE_DIR       = local.hosts[count.index].state_dir
      REMOTE_BASE_DIR = local.hosts[count.index].remote_base_dir
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-host.sh"
    environment = {
      STATE_DIR       = self.input.state_dir
      REMOTE_BASE_DIR = self.input.remote_base_dir
    }
  }
}

resource "terraform_data" "sshd" {
  count = length(local.hosts)

  # Anything that changes the host's identity or address restarts sshd.
  triggers_replace = [
    terraform_data.host[count.index].id,
    var.listen_address,
    local.hosts[count.index].port,
    local.hosts[count.index].public_key,
    var.ssh_public_key,
    var.ssh_user,
    var.sshd_path,
    var.uv_path,
  ]

  input = {
    scripts   = local.scripts
    state_dir = local.hosts[count.index].state_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-sshd.sh"
    environment = {
      STATE_DIR       = local.hosts[count.index].state_dir
      LISTEN_ADDRESS  = var.listen_address
      PORT            = tostring(local.hosts[count.index].port)
      HOST_KEY        = local.hosts[count.index].private_key_path
      AUTHORIZED_KEY  = var.ssh_public_key
      SSH_USER        = var.ssh_user
      REMOTE_BASE_DIR = local.hosts[count.index].remote_base_dir
      SSHD            = var.sshd_path
      UV_PATH         = var.uv_path
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-sshd.sh"
    environment = {
      STATE_DIR = self.input.state_dir
    }
  }
}

# --- shared stores ---------------------------------------------------------------
#
# As for hosts, two resources per store: `<store>` is the data's lifetime
# (destroying it stops the server and removes the data directory),
# `<store>_server` is the running server alone (replacing it restarts the
# server on the same data: featctl does that when the server died).

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

  triggers_replace = [terraform_data.redis[0].id, var.store_ports["redis"], var.store_password_files["redis"], var.redis_server_path, var.listen_address]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["redis"]
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

  triggers_replace = [terraform_data.postgres[0].id, var.store_ports["postgres"], var.store_password_files["postgres"], var.listen_address]

  input = {
    scripts  = local.scripts
    data_dir = var.store_dirs["postgres"]
    bin_dir  = var.postgres_bin_dir
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
