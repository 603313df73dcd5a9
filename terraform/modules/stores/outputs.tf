output "stores" {
  description = "Enabled store -> where the hosts reach it, the same keys as every stack's stores output (no secrets): redis {host, port, tls, ca_file}, postgres {host, port, database, user, sslmode, ca_file}."
  value = merge(
    local.redis ? { redis = { host = local.host, port = var.store_ports["redis"], tls = true, ca_file = var.ca_file } } : {},
    local.postgres ? {
      postgres = {
        host     = local.host
        port     = var.store_ports["postgres"]
        database = var.postgres_database
        user     = var.postgres_user
        sslmode  = "verify-full"
        ca_file  = var.ca_file
      }
    } : {},
  )
}
