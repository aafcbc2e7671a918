# flowcred managed with Terraform's Vault provider: a stored secret, a binding
# that references it, the connector's policy, and an AppRole for a Worker.
#
#   export VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=...
#   terraform init && terraform apply -var-file=secrets.auto.tfvars
#
# Secret values pass through Terraform here, so they end up in the Terraform
# state (marked sensitive, but stored). Keep the state encrypted, or store the
# secrets out of band with `flowcred secret put NAME -from-file PATH` and keep
# only the bindings (which hold secret *names*) in Terraform.

terraform {
  required_version = ">= 1.3"
  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = ">= 3.20"
    }
  }
}

# Address, token and namespace come from VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE.
provider "vault" {}

variable "mount" {
  description = "Path the flowcred plugin is mounted at."
  type        = string
  default     = "flowcred"
}

variable "gcp_client_id" {
  description = "OAuth client ID of the Google Cloud app."
  type        = string
}

variable "gcp_client_secret" {
  description = "OAuth client secret of the Google Cloud app."
  type        = string
  sensitive   = true
}

variable "gcp_refresh_token" {
  description = "Refresh token granted by the sales account (offline access)."
  type        = string
  sensitive   = true
}

locals {
  secrets = {
    gcp_client_id     = var.gcp_client_id
    gcp_client_secret = var.gcp_client_secret
    gcp_refresh_token = var.gcp_refresh_token
  }
}

# Stored secrets are write-only: disable_read stops Terraform from reading
# them back (a read returns metadata only), so there is no perpetual diff.
# for_each runs over the names only: Terraform refuses sensitive values as
# instance keys.
resource "vault_generic_endpoint" "secret" {
  for_each = toset(keys(local.secrets))

  path                 = "${var.mount}/secrets/${each.key}"
  disable_read         = true
  ignore_absent_fields = true
  data_json            = jsonencode({ value = local.secrets[each.key] })
}

# The binding of the seed's example. A read returns the same fields (secret
# references by name, never values), so Terraform can detect drift.
resource "vault_generic_endpoint" "google_sales" {
  path                 = "${var.mount}/bindings/google_sales"
  ignore_absent_fields = true
  data_json = jsonencode({
    kind                 = "google.oauth2"
    client_id_secret     = "gcp_client_id"
    client_secret_secret = "gcp_client_secret"
    refresh_token_secret = "gcp_refresh_token"
    scopes               = ["https://www.googleapis.com/auth/spreadsheets"]
    description          = "Sales team's Google Sheets"
  })

  # A binding write warns when a referenced secret does not exist yet.
  depends_on = [vault_generic_endpoint.secret]
}

# The connector's policy: read on exactly this handle's token path.
resource "vault_policy" "connector_google_sales" {
  name   = "connector-google_sales"
  policy = file("${path.module}/../agent/connector-google_sales.hcl")
}

# An AppRole for the Cloudflare Worker in ../workers (its role_id and a
# secret_id go into `wrangler secret put VAULT_ROLE_ID` / `VAULT_SECRET_ID`).
resource "vault_auth_backend" "approle" {
  type = "approle"
}

resource "vault_approle_auth_backend_role" "sheets_connector" {
  backend        = vault_auth_backend.approle.path
  role_name      = "sheets-connector"
  token_policies = [vault_policy.connector_google_sales.name]
  token_ttl      = 3600
  token_max_ttl  = 14400
}

output "approle_role_id_path" {
  description = "Read the role_id here; create a secret_id with a write to .../secret-id."
  value       = "auth/${vault_auth_backend.approle.path}/role/${vault_approle_auth_backend_role.sheets_connector.role_name}/role-id"
}
