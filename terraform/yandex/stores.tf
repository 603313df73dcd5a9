# Managed stores featctl can put beside the hosts (input `stores`): Valkey
# (Yandex Managed Service for Valkey, the provider's yandex_mdb_redis_cluster_v2,
# Redis-compatible) and PostgreSQL. Each is one host in the featctl subnet,
# reachable only from that subnet, over TLS, with a password featctl generated
# (input `store_password_files`). Clients verify the servers with Yandex's CA
# certificate, which cloud-init puts at local.ca_file on every VM.
#
# Ports are fixed by the services: Valkey with TLS listens on 6380 (6379 is the
# plain port), PostgreSQL on 6432 (Odyssey pooler); see
# https://yandex.cloud/en/docs/managed-redis/operations/connect/ and
# https://yandex.cloud/en/docs/managed-postgresql/operations/connect/.

locals {
  redis_enabled    = contains(var.stores, "redis")
  postgres_enabled = contains(var.stores, "postgres")

  redis_tls_port = 6380
  postgres_port  = 6432

  # Only the files given are read (a missing one is reported by the
  # preconditions below, with a clear message, instead of an index error here).
  store_passwords = {
    for store, path in var.store_password_files : store => sensitive(trimspace(file(path)))
    if contains(var.stores, store) && store != "spark"
  }
}

# --------------------------------------------------------------------- Valkey

resource "yandex_vpc_security_group" "redis" {
  count       = local.redis_enabled ? 1 : 0
  name        = "${var.name}-redis-sg"
  description = "featctl ${var.name}: Valkey TLS port from the featctl subnet only"
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "Valkey over TLS from the featctl subnet"
    protocol       = "TCP"
    port           = local.redis_tls_port
    v4_cidr_blocks = [var.subnet_cidr]
  }
}

resource "yandex_mdb_redis_cluster_v2" "this" {
  count               = local.redis_enabled ? 1 : 0
  name                = "${var.name}-redis"
  description         = "featctl ${var.name}: online store"
  environment         = "PRODUCTION"
  network_id          = yandex_vpc_network.this.id
  security_group_ids  = [yandex_vpc_security_group.redis[0].id]
  tls_enabled         = true
  deletion_protection = false # featctl destroy removes it
  labels              = local.labels

  config = {
    version  = var.redis_version
    password = local.store_passwords["redis"]
  }

  resources = {
    resource_preset_id = var.redis_resource_preset
    disk_type_id       = "network-ssd"
    disk_size          = var.redis_disk_size
  }

  hosts = {
    "a" = {
      zone      = var.zone
      subnet_id = yandex_vpc_subnet.this.id
    }
  }

  maintenance_window = {
    type = "ANYTIME"
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.store_password_files), "redis")
      error_message = "The redis store needs a password file: store_password_files must have a \"redis\" entry."
    }
  }
}

# ----------------------------------------------------------------- PostgreSQL

resource "yandex_vpc_security_group" "postgres" {
  count       = local.postgres_enabled ? 1 : 0
  name        = "${var.name}-postgres-sg"
  description = "featctl ${var.name}: PostgreSQL port from the featctl subnet only"
  network_id  = yandex_vpc_network.this.id
  labels      = local.labels

  ingress {
    description    = "PostgreSQL from the featctl subnet"
    protocol       = "TCP"
    port           = local.postgres_port
    v4_cidr_blocks = [var.subnet_cidr]
  }
}

resource "yandex_mdb_postgresql_cluster" "this" {
  count               = local.postgres_enabled ? 1 : 0
  name                = "${var.name}-postgres"
  description         = "featctl ${var.name}: feature store database"
  environment         = "PRODUCTION"
  network_id          = yandex_vpc_network.this.id
  security_group_ids  = [yandex_vpc_security_group.postgres[0].id]
  deletion_protection = false # featctl destroy removes it
  labels              = local.labels

  config {
    version = var.postgres_version
    resources {
      resource_preset_id = var.postgres_resource_preset
      disk_type_id       = "network-ssd"
      disk_size          = var.postgres_disk_size
    }
  }

  host {
    zone      = var.zone
    subnet_id = yandex_vpc_subnet.this.id
  }

  maintenance_window {
    type = "ANYTIME"
  }
}

# Users and databases as their own resources, as the provider recommends (the
# cluster's user/database blocks are deprecated).
resource "yandex_mdb_postgresql_user" "this" {
  count      = local.postgres_enabled ? 1 : 0
  cluster_id = yandex_mdb_postgresql_cluster.this[0].id
  name       = var.postgres_user
  password   = local.store_passwords["postgres"]

  lifecycle {
    precondition {
      condition     = contains(keys(var.store_password_files), "postgres")
      error_message = "The postgres store needs a password file: store_password_files must have a \"postgres\" entry."
    }
  }
}

resource "yandex_mdb_postgresql_database" "this" {
  count      = local.postgres_enabled ? 1 : 0
  cluster_id = yandex_mdb_postgresql_cluster.this[0].id
  name       = var.postgres_database
  owner      = yandex_mdb_postgresql_user.this[0].name
}
