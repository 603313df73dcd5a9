# Outputs featctl reads. No output may carry a secret: host keys appear only as
# their public lines, and the user-data (with the private keys) never.

locals {
  hosts = [for i, vm in yandex_compute_instance.this : {
    host            = vm.network_interface[0].nat_ip_address
    port            = 22
    host_public_key = trimspace(var.host_keys[i].public_key)
    remote_base_dir = var.remote_base_dir
  }]
}

locals {
  # Endpoints of the enabled stores, without secrets (the passwords stay in
  # featctl's files). A for expression over each store's resources (count 0 or
  # 1) yields an entry only for an enabled store; {} when none is.
  stores = merge(
    { for cluster in yandex_mdb_redis_cluster_v2.this : "redis" => {
      host    = cluster.hosts["a"].fqdn
      port    = local.redis_tls_port
      tls     = true
      ca_file = local.ca_file
    } },
    { for i, cluster in yandex_mdb_postgresql_cluster.this : "postgres" => {
      host     = cluster.host[0].fqdn
      port     = local.postgres_port
      database = yandex_mdb_postgresql_database.this[i].name
      user     = yandex_mdb_postgresql_user.this[i].name
      sslmode  = "verify-full"
      ca_file  = local.ca_file
    } },
  )
}

output "target" {
  description = "Stack kind."
  value       = "yandex"
}

output "hosts" {
  description = "Every host, in host_keys order: its static public IPv4 address, SSH port, the public host key installed on it (to pin in known_hosts) and its deployment directory (remote_base_dir). The same keys as the local stack's hosts: host, port, host_public_key, remote_base_dir."
  value       = local.hosts
}

output "host" {
  description = "Public IPv4 address of host 0 (hosts[0].host)."
  value       = local.hosts[0].host
}

output "port" {
  description = "SSH port of host 0 (hosts[0].port)."
  value       = local.hosts[0].port
}

output "host_public_key" {
  description = "Public host key of host 0 (hosts[0].host_public_key)."
  value       = local.hosts[0].host_public_key
}

output "user" {
  description = "SSH login user (the same on every host)."
  value       = var.ssh_user
}

output "remote_base_dir" {
  description = "Deployment directory on every host."
  value       = var.remote_base_dir
}

output "stores" {
  description = "Enabled store name -> endpoint, without secrets. redis: {host, port, tls, ca_file}; postgres: {host, port, database, user, sslmode, ca_file}. ca_file is the CA certificate's path on every host. {} when no store is enabled."
  value       = local.stores
}

locals {
  # The endpoint's internal address (the listener's, allocated in the hosts'
  # subnet) and ports; null while the endpoint is off. listener and its
  # internal_address_spec are sets in the provider's schema, one element each.
  endpoint = one([for lb in yandex_lb_network_load_balancer.endpoint : {
    address     = one(one(lb.listener).internal_address_spec).address
    port        = var.endpoint_port
    health_port = var.endpoint_health_port
    health_path = local.endpoint_health_path
  }])
}

output "endpoint" {
  description = "The application endpoint, null unless endpoint_enabled: {address, port, health_port, health_path}. address is the internal load balancer's IPv4 address in the hosts' subnet, port the TLS port HAProxy serves on every host behind it; the load balancer checks http://<host>:<health_port><health_path> on each host."
  value       = local.endpoint
}
