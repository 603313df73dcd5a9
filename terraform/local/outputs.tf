# The contract every featctl stack shares.

output "target" {
  value = "local"
}

output "hosts" {
  description = "One element per host: where to log in, its pinned key, its deployment directory."
  value = [
    for i, h in local.hosts : {
      host            = var.listen_address
      port            = h.port
      host_public_key = h.public_key
      remote_base_dir = h.remote_base_dir
    }
  ]
}

output "host" {
  value = var.listen_address
}

output "port" {
  value = local.hosts[0].port
}

output "user" {
  value = var.ssh_user
}

output "host_public_key" {
  value = local.hosts[0].public_key
}

output "remote_base_dir" {
  value = local.hosts[0].remote_base_dir
}

output "stores" {
  description = "Enabled store -> where the hosts reach it (no secrets): redis {host, port, tls, ca_file}, postgres {host, port, database, user, sslmode, ca_file}, as terraform/yandex's. ca_file is the CA certificate's path on host 0; each other host has it at the same place under its own directory."
  value       = module.stores.stores
}

output "host_id" {
  description = "Changes whenever host 0 is replaced."
  value       = terraform_data.host[0].id
}

output "sshd_id" {
  description = "Changes whenever host 0's sshd is restarted by Terraform."
  value       = terraform_data.sshd[0].id
}
