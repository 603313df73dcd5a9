# The contract every featctl stack shares: featctl always passes these.

variable "name" {
  description = "Deployment name, used to name what the stack creates."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.name))
    error_message = "name must start with a letter and hold only a-z, 0-9 and '-' (at most 41 characters)."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key line of the client key that may log in."
  type        = string
}

variable "host_private_key_path" {
  description = "Path to the OpenSSH private host key featctl generated for this host."
  type        = string
}

variable "host_public_key" {
  description = "OpenSSH public line of that host key; featctl pins it before connecting."
  type        = string
}

variable "ssh_user" {
  description = "User that featctl logs in as. On the local target it must be the user running Terraform."
  type        = string
}

variable "remote_base_dir" {
  description = "Directory on the host that holds the deployment (feature repo, Feast environment, service state)."
  type        = string
}

# Local-target settings.

variable "state_dir" {
  description = "The deployment's own directory for sshd's configuration, keys, pid file and log."
  type        = string
}

variable "listen_address" {
  description = "Loopback address sshd listens on."
  type        = string
  default     = "127.0.0.1"

  validation {
    condition     = can(regex("^127\\.", var.listen_address))
    error_message = "listen_address must be a loopback address (127.0.0.0/8): the local target never listens on the network."
  }
}

variable "port" {
  description = "TCP port sshd listens on."
  type        = number

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "sshd_path" {
  description = "Path to the OpenSSH server binary."
  type        = string
  default     = "/usr/sbin/sshd"
}

variable "uv_path" {
  description = "A uv binary on this machine that the local host's sessions may use (as FEATCTL_HOST_UV), so building the Feast environment needs no uv bootstrap; empty: the host bootstraps its own."
  type        = string
  default     = ""
}
