# The contract every featctl stack shares.

output "target" {
  value = "local"
}

output "host" {
  value = var.listen_address
}

output "port" {
  value = var.port
}

output "user" {
  value = var.ssh_user
}

output "host_public_key" {
  value = var.host_public_key
}

output "remote_base_dir" {
  value = var.remote_base_dir
}

output "host_id" {
  description = "Changes whenever the host is replaced."
  value       = terraform_data.host.id
}

output "sshd_id" {
  description = "Changes whenever sshd is restarted by Terraform."
  value       = terraform_data.sshd.id
}
