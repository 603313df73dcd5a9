# Contract outputs shared by every featctl stack. No output may carry secrets.

output "target" {
  description = "Stack kind."
  value       = "yandex"
}

output "host" {
  description = "Public (NAT) IPv4 address of the VM."
  value       = yandex_compute_instance.this.network_interface[0].nat_ip_address
}

output "port" {
  description = "SSH port."
  value       = 22
}

output "user" {
  description = "SSH login user."
  value       = var.ssh_user
}

output "host_public_key" {
  description = "Public host key installed on the VM (to pin in known_hosts)."
  value       = var.host_public_key
}

output "remote_base_dir" {
  description = "Deployment directory on the VM."
  value       = var.remote_base_dir
}
