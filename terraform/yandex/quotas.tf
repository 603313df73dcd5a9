# Yandex VPC's default quotas per cloud (https://yandex.cloud/en/docs/vpc/concepts/limits):
# 2 static public IPv4 addresses and 2 networks. Every host takes a static
# address, so more hosts than the quota would fail half-way through an apply
# (networks and the first addresses made, the next refused). This check stops
# the plan instead, before anything is created. It needs no provider: only
# built-in Terraform, so tests/unit/provision runs it offline.
#
# Networks are not checked: each deployment creates one, and the quota counts
# the cloud's other networks (its `default` one, other deployments), which
# only the cloud knows; terraform/yandex/README.md says what to do.
resource "terraform_data" "quotas" {
  input = { static_addresses = length(var.host_keys) }

  lifecycle {
    precondition {
      condition     = length(var.host_keys) <= var.static_address_quota
      error_message = "hosts = ${length(var.host_keys)} needs ${length(var.host_keys)} static public IPv4 addresses (one per host), more than the cloud's quota of ${var.static_address_quota} (Yandex's default is 2 per cloud; addresses reserved elsewhere in the cloud count too): ask Yandex Cloud to raise the quota (console: Quotas), then set [yandex] static_address_quota in featctl.toml to the new value."
    }
  }
}
