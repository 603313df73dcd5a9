terraform {
  # Only built-in Terraform: `terraform_data` and `local-exec` need no provider
  # download, so this stack works on a machine with no registry access.
  required_version = ">= 1.5"
}
