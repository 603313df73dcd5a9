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

variable "host_keys" {
  description = "One element per host: the path of the OpenSSH private host key featctl generated for it and its public line (featctl pins it before connecting)."
  type = list(object({
    private_key_path = string
    public_key       = string
  }))

  validation {
    condition     = length(var.host_keys) >= 1 && length(var.host_keys) <= 9
    error_message = "host_keys must have 1 to 9 elements (one per host)."
  }
}

variable "ssh_user" {
  description = "User that featctl logs in as. On the local target it must be the user running Terraform."
  type        = string
}

variable "remote_base_dir" {
  description = "Directory on host 0 that holds the deployment (the other hosts' are in host_dirs)."
  type        = string
}

variable "stores" {
  description = "Shared stores to run: any of redis, postgres."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.stores : contains(["redis", "postgres"], s)])
    error_message = "stores may hold redis and postgres (spark runs in the Feast environment itself)."
  }
}

variable "store_password_files" {
  description = "Store name -> a 0600 file featctl generated with its password (never on a command line)."
  type        = map(string)
  default     = {}
}

# Local-target settings.

variable "host_dirs" {
  description = "One element per host (as host_keys): its sshd state directory, its deployment directory and its sshd port."
  type = list(object({
    state_dir       = string
    remote_base_dir = string
    port            = number
  }))

  validation {
    condition     = alltrue([for h in var.host_dirs : h.port >= 1024 && h.port <= 65535])
    error_message = "every host's port must be between 1024 and 65535."
  }
}

variable "listen_address" {
  description = "Loopback address the hosts' sshd and the stores listen on."
  type        = string
  default     = "127.0.0.1"

  validation {
    condition     = can(regex("^127\\.", var.listen_address))
    error_message = "listen_address must be a loopback address (127.0.0.0/8): the local target never listens on the network."
  }
}

variable "sshd_path" {
  description = "Path to the OpenSSH server binary."
  type        = string
  default     = "/usr/sbin/sshd"
}

variable "uv_path" {
  description = "A uv binary on this machine that the local hosts' sessions may use (as FEATCTL_HOST_UV), so building the Feast environment needs no uv bootstrap; empty: each host bootstraps its own."
  type        = string
  default     = ""
}

variable "store_dirs" {
  description = "Store name -> its data directory (destroy removes it)."
  type        = map(string)
  default     = {}
}

variable "store_ports" {
  description = "Store name -> the loopback port it listens on."
  type        = map(number)
  default     = {}
}

variable "redis_server_path" {
  description = "Path to redis-server (Debian's redis-server package)."
  type        = string
  default     = "/usr/bin/redis-server"
}

variable "postgres_bin_dir" {
  description = "Directory of the PostgreSQL server binaries (initdb, postgres, pg_ctl)."
  type        = string
  default     = "/usr/lib/postgresql/15/bin"
}

variable "postgres_database" {
  description = "Database featctl's deployments use."
  type        = string
  default     = "feast"
}

variable "postgres_user" {
  description = "PostgreSQL role featctl's deployments log in as."
  type        = string
  default     = "feast"
}

variable "tls" {
  description = "The stores' TLS material featctl generated (0600 files in the workspace): ca_cert, server_cert, server_key (paths) and digest (changes with the certificates). Required with stores; its server certificate names listen_address."
  type = object({
    ca_cert     = string
    server_cert = string
    server_key  = string
    digest      = string
  })
  default = null
}
