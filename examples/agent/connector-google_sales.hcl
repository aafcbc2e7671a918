# Policy for the connector that uses the credential handle google_sales:
# it may read exactly that handle's material, nothing else in flowcred
# (no other handle, no binding, no secret).
path "flowcred/token/google_sales" {
  capabilities = ["read"]
}
