# Vault Agent for a connector that uses the credential handle google_sales.
#
# The agent logs in with the token in token_file_path (a token whose policy is
# connector-google_sales.hcl), renders connector-config.json.ctmpl into the
# connector's config, and re-renders it before the token expires: the
# flowcred lease is non-renewable, so the agent re-reads token/google_sales
# at about 90% of the lease and gets a fresh token from the plugin.
#
#   vault policy write connector-google_sales connector-google_sales.hcl
#   vault token create -policy=connector-google_sales -field=token > /etc/flowcred/agent/vault-token
#   vault agent -config=agent.hcl
#
# Paths below are examples; the test (agent_test.go) rewrites them.

vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "/etc/flowcred/agent/vault-token"
    }
  }
}

template_config {
  # Give up instead of retrying forever when Vault or the binding is broken,
  # so that a supervisor notices.
  exit_on_retry_failure = true
}

template {
  source               = "/etc/flowcred/agent/connector-config.json.ctmpl"
  destination          = "/run/flowcred/google_sales.json"
  perms                = "0600"
  error_on_missing_key = true
  # The connector re-reads its config on SIGHUP, or reads it per request.
  # command = "pkill -HUP -x sheets-connector"
}
