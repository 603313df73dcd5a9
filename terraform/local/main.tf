# The local "VM": an OpenSSH sshd on a loopback address, with its own host key,
# its own authorized key and its own directory.
#
# Two resources, so that a dead sshd can be restarted without touching what
# runs on the "machine": `host` is the machine's lifetime (destroying it stops
# every process the deployment started under remote_base_dir), `sshd` is the
# SSH daemon alone (replacing it restarts only sshd).

locals {
  scripts = abspath("${path.module}/scripts")
}

resource "terraform_data" "host" {
  triggers_replace = [
    var.state_dir,
    var.remote_base_dir,
  ]

  # Destroy-time provisioners may only read `self`, so everything the stop
  # script needs travels in `input`.
  input = {
    scripts         = local.scripts
    state_dir       = var.state_dir
    remote_base_dir = var.remote_base_dir
  }

  # Paths travel in the environment and scripts run through an interpreter, so
  # a workspace path with spaces or quotes is never parsed by a shell.
  provisioner "local-exec" {
    command = "mkdir -p \"$STATE_DIR\" \"$REMOTE_BASE_DIR\" && chmod 700 \"$STATE_DIR\""
    environment = {
      STATE_DIR       = var.state_dir
      REMOTE_BASE_DIR = var.remote_base_dir
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
  # Anything that changes the host's identity or address restarts sshd.
  triggers_replace = [
    terraform_data.host.id,
    var.listen_address,
    var.port,
    var.host_public_key,
    var.ssh_public_key,
    var.ssh_user,
    var.sshd_path,
    var.uv_path,
  ]

  input = {
    scripts   = local.scripts
    state_dir = var.state_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-sshd.sh"
    environment = {
      STATE_DIR       = var.state_dir
      LISTEN_ADDRESS  = var.listen_address
      PORT            = tostring(var.port)
      HOST_KEY        = var.host_private_key_path
      AUTHORIZED_KEY  = var.ssh_public_key
      SSH_USER        = var.ssh_user
      REMOTE_BASE_DIR = var.remote_base_dir
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
