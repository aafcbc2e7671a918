# The policy of the token Vault Proxy logs in with (proxy.hcl): read the
# credential material of every handle of the flowcred mount, nothing else.
# Narrow the path to the handles the connectors on this host use, e.g.
# "flowcred/token/google_sales".
path "flowcred/token/*" {
  capabilities = ["read"]
}
