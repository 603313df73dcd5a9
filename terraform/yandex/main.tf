locals {
  labels = {
    managed-by = "featctl"
    deployment = var.name
  }

  # Yandex's CA certificate, which signs the managed stores' TLS certificates
  # (https://yandex.cloud/en/docs/managed-redis/operations/connect/ and
  # .../managed-postgresql/operations/connect/: "wget https://storage.yandexcloud.net/cloud-certs/CA.pem").
  # cloud-init fetches it on every host; the stores output points clients at it.
  ca_url  = "https://storage.yandexcloud.net/cloud-certs/CA.pem"
  ca_dir  = "${var.remote_base_dir}/tls"
  ca_file = "${local.ca_dir}/YandexInternalRootCA.crt"

  # One user-data per host, each with that host's own key pair. It contains
  # the host PRIVATE key: sensitive() keeps it out of plan output. It is still
  # stored in the Terraform state and in the instance metadata. The vm stack
  # renders the same template with the same values.
  rendered_user_data = [for key in var.host_keys : sensitive(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    ssh_user         = var.ssh_user
    ssh_public_key   = trimspace(var.ssh_public_key)
    host_private_key = file(key.private_key_path)
    host_public_key  = trimspace(key.public_key)
    remote_base_dir  = var.remote_base_dir
    ca_url           = local.ca_url
    ca_dir           = local.ca_dir
    ca_file          = local.ca_file
  }))]

  # What each host gets. Without the endpoint: the template's rendering byte
  # for byte, so hosts made before the endpoint existed keep their user-data
  # (a change would replace them). With it: the same document plus the
  # endpoint's packages and commands (endpoint.tf), appended to its lists and
  # encoded again as YAML (the template's comments do not survive that).
  user_data = [for doc in local.rendered_user_data : !var.endpoint_enabled ? doc : "#cloud-config\n${yamlencode(merge(yamldecode(doc), {
    packages = concat(yamldecode(doc).packages, local.endpoint_cloud_init.packages)
    runcmd   = concat(yamldecode(doc).runcmd, local.endpoint_cloud_init.runcmd)
  }))}"]
}

data "yandex_compute_image" "os" {
  family    = var.image_family
  folder_id = "standard-images"
}

resource "yandex_vpc_network" "this" {
  name   = "${var.name}-net"
  labels = local.labels
}

resource "yandex_vpc_subnet" "this" {
  name           = "${var.name}-subnet"
  zone           = var.zone
  network_id     = yandex_vpc_network.this.id
  v4_cidr_blocks = [var.subnet_cidr]
  labels         = local.labels
}

resource "yandex_vpc_security_group" "this" {
  name        = "${var.name}-sg"
  description = var.endpoint_enabled ? "featctl ${var.name}: SSH in from allowed CIDRs, the endpoint from endpoint_allow and health checks, all egress" : "featctl ${var.name}: SSH in from allowed CIDRs only, all egress"
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "SSH"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.ssh_allowed_cidrs
  }

  # The application endpoint's rules (endpoint.tf), none while it is off.
  dynamic "ingress" {
    for_each = local.endpoint_ingress
    content {
      description       = ingress.value.description
      protocol          = "TCP"
      port              = ingress.value.port
      v4_cidr_blocks    = ingress.value.v4_cidr_blocks
      predefined_target = ingress.value.predefined_target
    }
  }

  egress {
    description    = "All outbound traffic"
    protocol       = "ANY"
    from_port      = 0
    to_port        = 65535
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

# A static public address: "When a VM with a dynamic public IP is stopped, its
# address is released" (https://yandex.cloud/en/docs/vpc/concepts/address), and
# a preemptible VM is stopped at least every 24 hours, so featctl's host would
# change under it. A reserved address survives stops and VM replacements.
resource "yandex_vpc_address" "this" {
  count  = length(var.host_keys)
  name   = "${var.name}-ip-${count.index}"
  labels = local.labels

  external_ipv4_address {
    zone_id = var.zone # must be the VM's zone
  }
}

# cloud-init applies users, ssh_keys and runcmd once per instance, and a
# metadata change is an in-place update of a running VM: a new user, base
# directory or host key would never reach it. This resource changes exactly
# when the rendered user-data does, and the VM is replaced with it (see
# replace_triggered_by below). Only a hash is kept: the plan shows that the
# user-data changed, never the private key inside it.
resource "terraform_data" "user_data" {
  count = length(var.host_keys)
  # A SHA-256 of user-data that holds a random 256-bit private key reveals
  # nothing about the key; nonsensitive() lets the plan show which hash changed.
  input = nonsensitive(sha256(local.user_data[count.index]))
}

# One VM per element of host_keys, not an instance group: each host needs its
# own pinned host key (its own user-data) and its own static address. With
# count, adding hosts appends VMs and leaves host 0 as it is.
resource "yandex_compute_instance" "this" {
  count                     = length(var.host_keys)
  name                      = "${var.name}-vm-${count.index}"
  hostname                  = "${var.name}-vm-${count.index}"
  platform_id               = var.platform_id
  zone                      = var.zone
  labels                    = local.labels
  allow_stopping_for_update = true

  resources {
    cores         = var.cores
    memory        = var.memory
    core_fraction = var.core_fraction
  }

  boot_disk {
    initialize_params {
      image_id = data.yandex_compute_image.os.id
      size     = var.disk_size
      type     = var.disk_type
    }
  }

  network_interface {
    subnet_id = yandex_vpc_subnet.this.id
    # The provider uses nat_ip_address only together with nat = true.
    nat                = true
    nat_ip_address     = yandex_vpc_address.this[count.index].external_ipv4_address[0].address
    security_group_ids = [yandex_vpc_security_group.this.id]
  }

  scheduling_policy {
    preemptible = var.preemptible
  }

  metadata = {
    user-data = local.user_data[count.index]
  }

  lifecycle {
    # A newer image in the family must not force re-creation of the VM.
    ignore_changes = [boot_disk[0].initialize_params[0].image_id]
    # New user-data only takes effect on a new instance (see terraform_data.user_data).
    replace_triggered_by = [terraform_data.user_data[count.index]]
  }
}

# The single VM of earlier versions becomes host 0.
moved {
  from = yandex_compute_instance.this
  to   = yandex_compute_instance.this[0]
}
