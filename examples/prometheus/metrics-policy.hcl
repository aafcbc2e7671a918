# Read flowcred's metrics and nothing else.
path "flowcred/metrics" {
  capabilities = ["read"]
}
