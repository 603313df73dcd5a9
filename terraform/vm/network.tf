# The deployment's own network on this machine: what a cloud's VPC subnet is
# to its VMs. Two resources:
#   network   the bridge with the subnet's first address (.1, the guests'
#             gateway and where the stores listen) and IPv4 forwarding on the
#             bridge and this machine's uplink; destroy removes the bridge
#             (and any veth left on it) and the forwarding it turned on;
#   firewall  one nftables table of the deployment's own: NAT (masquerade)
#             for the subnet's traffic that leaves this machine (apt, PyPI,
#             DNS), nothing routed into the subnet from elsewhere but
#             replies, and from the guests to this machine only the stores'
#             ports (replacing it reloads the table atomically: a new store).
# Addresses only ever come from 198.18.0.0/15, the benchmarking range (RFC
# 2544): featctl chose the /28 once, past every network this machine has.
# A bridge per deployment rather than one shared: one deployment's guests are
# not on another's link, its NAT and filter name its subnet alone, and its
# teardown needs to know of no other deployment (the bridge goes with it).

locals {
  gateway = cidrhost(var.network.cidr, 1)
  prefix  = split("/", var.network.cidr)[1]
}

resource "terraform_data" "network" {
  triggers_replace = [var.network.bridge, var.network.cidr]

  input = {
    scripts = local.scripts
    bridge  = var.network.bridge
    cidr    = var.network.cidr
    gateway = local.gateway
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/net-up.sh"
    environment = {
      BRIDGE  = var.network.bridge
      CIDR    = var.network.cidr
      ADDRESS = "${local.gateway}/${local.prefix}"
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/net-down.sh"
    environment = {
      BRIDGE = self.input.bridge
    }
  }
}

resource "terraform_data" "firewall" {
  triggers_replace = [
    terraform_data.network.id,
    filesha256("${local.scripts}/firewall.sh"),
    join(",", sort([for s in var.stores : tostring(var.store_ports[s])])),
  ]

  input = {
    scripts = local.scripts
    bridge  = var.network.bridge
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh"]
    command     = "${local.scripts}/firewall.sh"
    environment = {
      BRIDGE  = var.network.bridge
      CIDR    = var.network.cidr
      GATEWAY = local.gateway
      PORTS   = join(",", sort([for s in var.stores : tostring(var.store_ports[s])]))
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh"]
    command     = "${self.input.scripts}/firewall.sh"
    environment = {
      BRIDGE = self.input.bridge
      DELETE = "1"
    }
  }
}
