terraform {
  required_version = ">= 1.5"

  required_providers {
    yandex = {
      source  = "yandex-cloud/yandex"
      version = "~> 0.130"
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
