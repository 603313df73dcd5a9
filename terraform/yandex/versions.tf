terraform {
  required_version = ">= 1.5"

  required_providers {
    yandex = {
      source = "yandex-cloud/yandex"
      # >= 0.180: yandex_mdb_redis_cluster_v2 (Valkey) and every argument the
      # stack uses exist there (checked against the provider's source for
      # v0.180.0 and v0.222.0, see tests/unit/provision/test_yandex_provider_schema.py).
      # postgres_version = "18" is listed by the provider from v0.206.0 on.
      version = "~> 0.180"
    }
  }
}

# Credentials are never passed through Terraform variables: the provider reads
# YC_TOKEN or YC_SERVICE_ACCOUNT_KEY_FILE (and YC_CLOUD_ID / YC_FOLDER_ID /
# YC_ZONE) from the environment. A null argument here means "use the env var".
provider "yandex" {
  cloud_id  = var.cloud_id
  folder_id = var.folder_id
  zone      = var.zone
}
