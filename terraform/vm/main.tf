# The vm target: one Debian guest per host, booted by systemd-nspawn with
# systemd as PID 1, whose cloud-init (NoCloud datasource) runs the user-data
# rendered from the yandex stack's own template (user, authorized key,
# featctl's host key, packages, runcmd). Everything after SSH is the
# production path: cloud-init wait, /opt/featctl, systemd units.
#
# Only built-in Terraform (`terraform_data` + `local-exec`). Three resources:
#   image    the base image (mmdebstrap, packed into a read-only ext4 image
#            file), built once per package list and kept in image_cache_dir
#            between deployments (destroy leaves it);
#   machine  per guest: its disk (its own ext4 image file on a loop device,
#            holding an overlay over the image) and its NoCloud seed, i.e. the
#            instance (destroy removes it; new user-data replaces it, as the
#            yandex stack replaces a VM);
#   guest    per guest: the running container (replacing it reboots the
#            guest on the same disk; featctl does that when it is down).
#
# The guests share this machine's network namespace: their apt and PyPI
# traffic leaves as this machine's does, and their sshd listens on a
# loopback port only.

locals {
  scripts = abspath("${path.module}/scripts")

  # Keyed on what the image holds: a new package list (or build script)
  # builds a new image beside the old one.
  image_key = substr(sha256(jsonencode([var.suite, var.mirror, sort(var.image_packages), filesha256("${local.scripts}/build-image.sh")])), 0, 16)
  image_dir = "${var.image_cache_dir}/images/${var.suite}-${local.image_key}"

  # The stores' CA reaches the guests as a Yandex VM's does: runcmd fetches
  # ca_url into ca_file. Here ca_url is a file:// URL of a read-only bind
  # mount of the guest's copy (nspawn's /run/host is the host's hand-over).
  ca_mount = "/run/host/featctl-ca"
  ca_url   = "file://${local.ca_mount}/ca.crt"
  ca_dir   = "${var.remote_base_dir}/tls"
  ca_file  = "${local.ca_dir}/featctl-ca.crt"

  hosts = [
    for i, key in var.host_keys : {
      private_key_path = key.private_key_path
      public_key       = trimspace(key.public_key)
      machine          = var.machines[i].machine
      machine_dir      = var.machines[i].machine_dir
      port             = var.machines[i].port
      hostname         = "${var.name}-vm-${i}"
    }
  ]

  # The same template and values as terraform/yandex/main.tf. It holds the
  # host's private key: it reaches the provisioner only in its environment
  # and the guest's seed (0600), never an output or the plan (only its hash).
  user_data = [for h in local.hosts : templatefile(var.user_data_template, {
    ssh_user         = var.ssh_user
    ssh_public_key   = trimspace(var.ssh_public_key)
    host_private_key = file(h.private_key_path)
    host_public_key  = h.public_key
    remote_base_dir  = var.remote_base_dir
    ca_url           = local.ca_url
    ca_dir           = local.ca_dir
    ca_file          = local.ca_file
  })]

  # What a guest on this machine needs beyond a Yandex VM, kept out of the
  # yandex template: sshd on its loopback port (the guests share this
  # machine's network), this machine's extra CAs (a TLS-intercepting proxy's,
  # for apt and PyPI), a locale a minimal image has, its name in /etc/hosts.
  vendor_data = [for h in local.hosts : "#cloud-config\n${yamlencode(merge(
    {
      locale           = "C.UTF-8"
      manage_etc_hosts = true
      write_files = [{
        path        = "/etc/ssh/sshd_config.d/10-featctl-vm.conf"
        permissions = "0644"
        content     = "# featctl vm target: the guest shares the host's network; sshd on loopback only\nListenAddress ${var.listen_address}:${h.port}\n"
      }]
    },
    length(var.trusted_ca_files) > 0 ? { ca_certs = { trusted = [for f in var.trusted_ca_files : file(f)] } } : {},
  ))}"]

  meta_data = [for i, h in local.hosts : yamlencode({
    # A new instance id whenever the seed changes, so cloud-init runs it again.
    instance-id    = "${h.machine}-${substr(sha256("${local.user_data[i]}${local.vendor_data[i]}"), 0, 12)}"
    local-hostname = h.hostname
  })]
}

resource "terraform_data" "image" {
  triggers_replace = [local.image_dir]

  # Built under a lock (deployments share the cache); an image already built
  # is used as it is. Destroy leaves it: it is a cache, not the deployment's.
  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/build-image.sh"
    environment = {
      IMAGE_DIR = local.image_dir
      SUITE     = var.suite
      MIRROR    = var.mirror
      PACKAGES  = join(",", sort(var.image_packages))
    }
  }
}

# The instance: its disk and seed. New user-data, vendor-data or image means a
# new instance (cloud-init applies users, keys and runcmd once per instance).
resource "terraform_data" "machine" {
  count = length(local.hosts)

  triggers_replace = [
    terraform_data.image.id,
    local.hosts[count.index].machine_dir,
    local.hosts[count.index].machine,
    sha256(local.user_data[count.index]),
    sha256(local.vendor_data[count.index]),
    var.disk_size,
    # runcmd fetches the CA once per instance: a new CA needs a new instance.
    filesha256(var.tls.ca_cert),
  ]

  input = {
    scripts     = local.scripts
    machine_dir = local.hosts[count.index].machine_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/create-machine.sh"
    environment = {
      MACHINE_DIR = local.hosts[count.index].machine_dir
      IMAGE_DIR   = local.image_dir
      USER_DATA   = local.user_data[count.index]
      VENDOR_DATA = local.vendor_data[count.index]
      META_DATA   = local.meta_data[count.index]
      CA_CERT     = var.tls.ca_cert
      DISK_SIZE   = tostring(var.disk_size)
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/destroy-machine.sh"
    environment = {
      MACHINE_DIR = self.input.machine_dir
    }
  }
}

# The running guest. Replacing it stops the container and boots it again on
# the same disk, as a reboot would (cloud-init does not run the seed again).
resource "terraform_data" "guest" {
  count = length(local.hosts)

  triggers_replace = [
    terraform_data.machine[count.index].id,
    var.listen_address,
    local.hosts[count.index].port,
  ]

  input = {
    scripts     = local.scripts
    machine_dir = local.hosts[count.index].machine_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-guest.sh"
    environment = {
      MACHINE_DIR    = local.hosts[count.index].machine_dir
      MACHINE        = local.hosts[count.index].machine
      IMAGE_DIR      = local.image_dir
      CA_MOUNT       = local.ca_mount
      LISTEN_ADDRESS = var.listen_address
      PORT           = tostring(local.hosts[count.index].port)
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/stop-guest.sh"
    environment = {
      MACHINE_DIR = self.input.machine_dir
    }
  }
}

# --- shared stores ---------------------------------------------------------------
#
# featctl's own TLS-only Redis and PostgreSQL on this machine, as on the local
# target. The guests share this machine's network, so they reach the servers
# at listen_address, with the CA their user-data fetched into ca_file: the
# settings a Yandex VM uses for the managed stores (ssl_ca_certs,
# sslmode=verify-full, sslrootcert).

module "stores" {
  source = "../modules/stores"

  stores               = var.stores
  store_dirs           = var.store_dirs
  store_ports          = var.store_ports
  store_password_files = var.store_password_files
  tls                  = var.tls
  ca_file              = local.ca_file
  listen_address       = var.listen_address
}
