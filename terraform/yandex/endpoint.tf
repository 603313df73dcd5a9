# The application endpoint (input endpoint_enabled, off by default): one
# internal address in the hosts' subnet that spreads TLS connections over every
# host. Yandex's network load balancer works at layer 4 and passes each
# connection on unchanged, client address included; HAProxy on each host
# terminates TLS, checks the client's token and forwards to that host's
# feature server. featctl writes HAProxy's configuration over SSH; cloud-init
# only installs it, stopped (endpoint_cloud_init below).
#
# The load balancer checks each host's HAProxy on its own plain-HTTP health
# port (endpoint_health_port, GET /healthz), not on the endpoint port: HAProxy
# answers 200 there only while it has a live backend, so a host whose feature
# server is down leaves the rotation although HAProxy itself still runs.
#
# On an internal load balancer's targets, Yandex blocks the target port and the
# health check port for any traffic but the load balancer's
# (https://yandex.cloud/en/docs/network-load-balancer/concepts/nlb-types): the
# hosts' own addresses do not serve the endpoint, and a host cannot reach the
# endpoint through the load balancer's address itself.

locals {
  # Who may connect to the endpoint port: endpoint_allow, or else the hosts'
  # own subnet.
  endpoint_allow = length(var.endpoint_allow) > 0 ? var.endpoint_allow : [var.subnet_cidr]

  # The ingress rules the endpoint adds to the hosts' security group (main.tf),
  # none while it is off. Clients keep their own source address through the
  # load balancer, so the endpoint port admits endpoint_allow; the health
  # port admits only the load balancer's health checks; the peer port only
  # the hosts themselves (a read whose host's feature server failed it goes
  # on to another host's HAProxy, as the layer-4 load balancer cannot retry
  # it). (A for expression, not
  # `enabled ? [...] : []`: the two rules are objects of different types, null
  # where the other has a value, which a conditional cannot unify into a list.)
  endpoint_ingress = [for rule in [
    {
      description       = "featctl endpoint (HAProxy, TLS) from endpoint_allow"
      port              = var.endpoint_port
      v4_cidr_blocks    = local.endpoint_allow
      predefined_target = null
    },
    {
      description       = "Load balancer health checks of HAProxy"
      port              = var.endpoint_health_port
      v4_cidr_blocks    = null
      predefined_target = "loadbalancer_healthchecks"
    },
    {
      description       = "HAProxy of another host passing a request on (mutual TLS)"
      port              = var.endpoint_peer_port
      v4_cidr_blocks    = null
      predefined_target = "self_security_group"
    },
  ] : rule if var.endpoint_enabled]

  endpoint_health_path = "/healthz"

  # What the endpoint adds to each host's cloud-init (main.tf's user_data).
  # Installing haproxy starts it with the package's configuration: it is
  # stopped and disabled at once, so nothing listens on the endpoint's ports
  # until featctl has written its own configuration (<remote_base_dir>/run/endpoint,
  # agent/edge.py) over SSH and started it as a featctl unit.
  endpoint_cloud_init = {
    packages = ["haproxy"]
    runcmd   = [["systemctl", "disable", "--now", "haproxy"]]
  }
}

# Every host, by its address in the subnet (count order = host_keys order).
resource "yandex_lb_target_group" "endpoint" {
  count  = var.endpoint_enabled ? 1 : 0
  name   = "${var.name}-endpoint"
  labels = local.labels

  dynamic "target" {
    for_each = yandex_compute_instance.this
    content {
      subnet_id = yandex_vpc_subnet.this.id
      address   = target.value.network_interface[0].ip_address
    }
  }
}

resource "yandex_lb_network_load_balancer" "endpoint" {
  count               = var.endpoint_enabled ? 1 : 0
  name                = "${var.name}-endpoint"
  description         = "featctl ${var.name}: application endpoint over every host's HAProxy"
  type                = "internal" # an address in the subnet, none on the Internet
  deletion_protection = false      # featctl destroy removes it
  labels              = local.labels

  listener {
    name        = "endpoint"
    protocol    = "tcp"
    port        = var.endpoint_port
    target_port = var.endpoint_port

    internal_address_spec {
      subnet_id  = yandex_vpc_subnet.this.id
      ip_version = "ipv4"
    }
  }

  attached_target_group {
    target_group_id = yandex_lb_target_group.endpoint[0].id

    # The provider's defaults, written out: a host leaves the rotation after
    # two failed checks 2 s apart and comes back after two good ones.
    healthcheck {
      name                = "haproxy"
      interval            = 2
      timeout             = 1
      unhealthy_threshold = 2
      healthy_threshold   = 2

      http_options {
        port = var.endpoint_health_port
        path = local.endpoint_health_path
      }
    }
  }
}
