terraform {
  # Only built-in Terraform (terraform_data, local-exec): no provider download.
  required_version = ">= 1.4"
}
