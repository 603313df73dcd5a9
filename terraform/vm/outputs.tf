# The contract every featctl stack shares. No output carries a secret: host
# keys appear only as their public lines, the user-data never.

output "target" {
  value = "vm"
}

output "hosts" {
  description = "One element per guest: where to log in (its own address on the deployment's network, port 22), its pinned key, its deployment directory."
  value = [
    for h in local.hosts : {
      host            = h.address
      port            = 22
      host_public_key = h.public_key
      remote_base_dir = var.remote_base_dir
    }
  ]
}

output "host" {
  value = local.hosts[0].address
}

output "port" {
  value = 22
}

output "user" {
  value = var.ssh_user
}

output "host_public_key" {
  value = local.hosts[0].public_key
}

output "remote_base_dir" {
  value = var.remote_base_dir
}

output "stores" {
  description = "Enabled store -> where the guests reach it (no secrets): redis {host, port, tls, ca_file}, postgres {host, port, database, user, sslmode, ca_file}, as terraform/yandex's; ca_file is the CA's path in every guest. {} when no store is enabled."
  value       = module.stores.stores
}

output "machines" {
  description = "One element per guest: its systemd-nspawn machine name, its directory on this machine (disk layers, seed, logs) and its address."
  value       = [for h in local.hosts : { machine = h.machine, machine_dir = h.machine_dir, address = h.address }]
}

output "network" {
  description = "The deployment's network on this machine: its bridge, its subnet, the bridge's address (the guests' gateway, where the stores listen) and its nftables table (NAT and filter)."
  value = {
    bridge  = var.network.bridge
    cidr    = var.network.cidr
    gateway = local.gateway
    table   = "featctl_${var.network.bridge}"
  }
}

output "image" {
  description = "The base image directory (a cache shared by deployments; destroy leaves it)."
  value       = local.image_dir
}

output "host_id" {
  description = "Changes whenever guest 0 is replaced (a new instance)."
  value       = terraform_data.machine[0].id
}
