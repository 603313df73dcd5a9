variable "stores" {
  description = "Store servers to run: any of redis, postgres."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.stores : contains(["redis", "postgres"], s)])
    error_message = "stores may hold redis and postgres."
  }
}

variable "store_dirs" {
  description = "Store name -> its data directory (destroying the store removes it)."
  type        = map(string)
  default     = {}
}

variable "store_ports" {
  description = "Store name -> the TCP port it serves TLS on."
  type        = map(number)
  default     = {}
}

variable "store_password_files" {
  description = "Store name -> a 0600 file featctl generated with its password (never on a command line)."
  type        = map(string)
  default     = {}
}

variable "tls" {
  description = "The stores' TLS material featctl generated (0600 files): ca_cert, server_cert, server_key (paths) and digest (changes with the certificates; a change restarts the servers). The server certificate's names must include host_address."
  type = object({
    ca_cert     = string
    server_cert = string
    server_key  = string
    digest      = string
  })
  default = null
}

variable "ca_file" {
  description = "Where the hosts find the CA certificate (reported in the stores output; the calling stack puts it there)."
  type        = string
  default     = ""
}

variable "listen_address" {
  description = "Address the servers listen on."
  type        = string
  default     = "127.0.0.1"
}

variable "client_cidr" {
  description = "The network PostgreSQL admits clients from (pg_hba hostssl, scram-sha-256); \"all\" where listen_address is loopback. The vm stack gives its guests' subnet and nothing wider."
  type        = string
  default     = "all"

  validation {
    condition     = var.client_cidr == "all" || can(cidrnetmask(var.client_cidr))
    error_message = "client_cidr must be \"all\" or an IPv4 CIDR."
  }
}

variable "restart_on" {
  description = "Any value whose change restarts the servers on the same data (the vm stack's network: a new bridge needs the servers bound to it again)."
  type        = string
  default     = ""
}

variable "host_address" {
  description = "Address the hosts reach the servers at (in the stores output); null: listen_address."
  type        = string
  default     = null
}

variable "redis_server_path" {
  description = "Path to redis-server (built with TLS, as Debian's redis-server 7 is)."
  type        = string
  default     = "/usr/bin/redis-server"
}

variable "postgres_bin_dir" {
  description = "Directory of the PostgreSQL server binaries (initdb, pg_ctl, psql)."
  type        = string
  default     = "/usr/lib/postgresql/15/bin"
}

variable "postgres_database" {
  description = "Database the deployments use."
  type        = string
  default     = "feast"
}

variable "postgres_user" {
  description = "PostgreSQL role the deployments log in as."
  type        = string
  default     = "feast"
}
