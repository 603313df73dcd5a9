# The vm target: one Debian guest per host, booted by systemd-nspawn with
# systemd as PID 1, whose cloud-init (NoCloud datasource) runs the user-data
# rendered from the yandex stack's own template (user, authorized key,
# featctl's host key, packages, runcmd). Everything after SSH is the
# production path: cloud-init wait, /opt/featctl, systemd units.
#
# Only built-in Terraform (`terraform_data` + `local-exec`). Per deployment:
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
# The guests' network (network.tf) is the deployment's own, as a cloud VPC's
# subnet is: a Linux bridge on this machine with a /28 of 198.19.0.0/16
# (inside 198.18.0.0/15, the benchmarking range: no other private range may
# carry traffic here), the bridge at .1, guest i at .(i + 2). systemd-nspawn
# --network-bridge gives each guest a network namespace of its own and a veth
# pair on the bridge (the guest's end is host0); the guest's cloud-init
# configures host0 from the seed's network-config, as a cloud VM's does.
# featctl logs in at the guest's address, port 22 (sshd's defaults; the host
# key stays pinned). The stores listen on the bridge's address only. The
# guests reach apt, PyPI and this machine's DNS resolver (its resolv.conf is
# copied in) through NAT for their subnet only, in an nftables table of the
# deployment's own; destroy removes the table, the bridge and whatever veth is
# left on it.

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
      address          = cidrhost(var.network.cidr, i + 2)
      hostname         = "${var.name}-vm-${i}"
    }
  ]

  # The same template and values as terraform/yandex/main.tf. It holds the
  # host's private key: it reaches the provisioner only in its environment
  # and the guest's seed (0600), never an output or the plan (only its hash).
  rendered_user_data = [for h in local.hosts : templatefile(var.user_data_template, {
    ssh_user         = var.ssh_user
    ssh_public_key   = trimspace(var.ssh_public_key)
    host_private_key = file(h.private_key_path)
    host_public_key  = h.public_key
    remote_base_dir  = var.remote_base_dir
    ca_url           = local.ca_url
    ca_dir           = local.ca_dir
    ca_file          = local.ca_file
  })]

  # The application endpoint's additions, as terraform/yandex/main.tf makes
  # them (the same packages and commands: HAProxy installed, Debian's own unit
  # stopped; featctl writes its configuration and runs it over SSH). Without
  # the endpoint, the template's rendering byte for byte.
  endpoint_cloud_init = {
    packages = ["haproxy"]
    runcmd   = [["systemctl", "disable", "--now", "haproxy"]]
  }
  user_data = [for doc in local.rendered_user_data : !var.endpoint_enabled ? doc : "#cloud-config\n${yamlencode(merge(yamldecode(doc), {
    packages = concat(yamldecode(doc).packages, local.endpoint_cloud_init.packages)
    runcmd   = concat(yamldecode(doc).runcmd, local.endpoint_cloud_init.runcmd)
  }))}"]

  # What a guest on this machine needs beyond a Yandex VM, kept out of the
  # yandex template: this machine's extra CAs (a TLS-intercepting proxy's,
  # for apt and PyPI), a locale a minimal image has, its name in /etc/hosts.
  vendor_data = [for h in local.hosts : "#cloud-config\n${yamlencode(merge(
    {
      locale           = "C.UTF-8"
      manage_etc_hosts = true
    },
    length(var.trusted_ca_files) > 0 ? { ca_certs = { trusted = [for f in var.trusted_ca_files : file(f)] } } : {},
  ))}"]

  # The guest's address, as a cloud's metadata hands it over: NoCloud's
  # network-config (version 2), which cloud-init renders for systemd-networkd.
  # host0 is the guest's end of its veth pair (systemd-nspawn names it).
  network_config = [for h in local.hosts : yamlencode({
    version = 2
    ethernets = {
      host0 = {
        match     = { name = "host0" }
        addresses = ["${h.address}/${local.prefix}"]
        routes    = [{ to = "0.0.0.0/0", via = local.gateway }]
      }
    }
  })]

  meta_data = [for i, h in local.hosts : yamlencode({
    # A new instance id whenever the seed changes, so cloud-init runs it again.
    instance-id    = "${h.machine}-${substr(sha256("${local.user_data[i]}${local.vendor_data[i]}${local.network_config[i]}"), 0, 12)}"
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
    sha256(local.network_config[count.index]),
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
      NETWORK     = local.network_config[count.index]
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

  # Its first boot's apt and PyPI go out through the firewall's NAT.
  depends_on = [terraform_data.firewall]

  # A new network (the bridge is gone after this machine rebooted, say)
  # boots the guest again on it.
  triggers_replace = [
    terraform_data.machine[count.index].id,
    terraform_data.network.id,
  ]

  input = {
    scripts     = local.scripts
    machine_dir = local.hosts[count.index].machine_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/start-guest.sh"
    environment = {
      MACHINE_DIR = local.hosts[count.index].machine_dir
      MACHINE     = local.hosts[count.index].machine
      IMAGE_DIR   = local.image_dir
      CA_MOUNT    = local.ca_mount
      BRIDGE      = terraform_data.network.output.bridge
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
# target, but listening on the bridge's address only: the guests reach them
# there (the server certificate names it; PostgreSQL admits the deployment's
# subnet and nothing wider; network.tf's firewall lets only the guests and
# this machine in), with the CA their user-data fetched: the settings a Yandex
# VM uses for the managed stores (ssl_ca_certs, sslmode=verify-full,
# sslrootcert). A new network restarts them on it.

module "stores" {
  source = "../modules/stores"

  stores               = var.stores
  store_dirs           = var.store_dirs
  store_ports          = var.store_ports
  store_password_files = var.store_password_files
  tls                  = var.tls
  ca_file              = local.ca_file
  listen_address       = local.gateway
  client_cidr          = var.network.cidr
  # Also what orders the servers after the bridge they bind to.
  restart_on = terraform_data.network.id
}
