# The local "VMs": one OpenSSH sshd per host on a loopback address, each with
# its own host key, authorized key and directory, and the shared stores a
# deployment may ask for (a real redis-server, a real PostgreSQL cluster),
# started by Terraform on loopback with passwords featctl generated, serving
# TLS only with a CA featctl generated (../modules/stores), like a cloud's
# managed stores: each host gets the CA's certificate under its directory
# (<remote_base_dir>/tls/, as terraform/yandex's cloud-init places Yandex's CA).
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
  # Where every host finds the stores' CA certificate, as on terraform/yandex:
  # <remote_base_dir>/tls/<file> (the stores output names host 0's; featctl
  # reads the same path under each host's own directory).
  ca_name = "featctl-ca.crt"
  ca_file = "${local.hosts[0].remote_base_dir}/tls/${local.ca_name}"
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
# The servers live in the shared module (terraform/vm uses it too); the stores
# of earlier versions of this stack move into it with their data.

module "stores" {
  source = "../modules/stores"

  stores               = var.stores
  store_dirs           = var.store_dirs
  store_ports          = var.store_ports
  store_password_files = var.store_password_files
  tls                  = var.tls
  ca_file              = local.ca_file
  listen_address       = var.listen_address
  redis_server_path    = var.redis_server_path
  postgres_bin_dir     = var.postgres_bin_dir
  postgres_database    = var.postgres_database
  postgres_user        = var.postgres_user
}

moved {
  from = terraform_data.redis
  to   = module.stores.terraform_data.redis
}

moved {
  from = terraform_data.redis_server
  to   = module.stores.terraform_data.redis_server
}

moved {
  from = terraform_data.postgres
  to   = module.stores.terraform_data.postgres
}

moved {
  from = terraform_data.postgres_server
  to   = module.stores.terraform_data.postgres_server
}

# The CA's certificate on every host (0644 in a 0755 directory, as cloud-init
# puts Yandex's on a VM). A new CA, or a new host, places it again.
resource "terraform_data" "host_ca" {
  count = var.tls == null ? 0 : length(local.hosts)

  triggers_replace = [terraform_data.host[count.index].id, try(var.tls.digest, "")]

  provisioner "local-exec" {
    command = "install -d -m 0755 \"$CA_DIR\" && install -m 0644 \"$CA_CERT\" \"$CA_DIR/$CA_NAME.tmp\" && mv -f \"$CA_DIR/$CA_NAME.tmp\" \"$CA_DIR/$CA_NAME\""
    environment = {
      CA_DIR  = "${local.hosts[count.index].remote_base_dir}/tls"
      CA_NAME = local.ca_name
      CA_CERT = try(var.tls.ca_cert, "")
    }
  }
}
