# Vault Proxy in front of connectors that are not written in Go (Python, Node,
# shell) and read flowcred/token/<handle> on every request.
#
# The connectors talk to the proxy on loopback, with no Vault token of their
# own:
#
#   curl http://127.0.0.1:8100/v1/flowcred/token/google_sales
#
# The proxy logs in with the token in token_file_path (its policy is
# flowcred-reader.hcl) and adds it to every request (api_proxy
# use_auto_auth_token). Its cache keeps a response with a renewable lease and
# answers the same request from memory until the lease nears its end; a
# response with a non-renewable lease, or none, is forwarded to Vault every
# time. README.md says what that means for flowcred's leases.
#
#   vault policy write flowcred-reader flowcred-reader.hcl
#   vault token create -policy=flowcred-reader -period=24h -field=token > /etc/vault-proxy/vault-token
#   vault proxy -config=proxy.hcl
#
# Paths and addresses below are examples; the test (bench/proxy_test.go) and
# the benchmark rewrite them.

vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "/etc/vault-proxy/vault-token"
    }
  }
}

# The lease cache, in memory. It only works with auto_auth: it caches what
# was read with the proxy's own token.
cache {}

api_proxy {
  # Requests without X-Vault-Token get the proxy's token. A request that
  # brings its own token is forwarded with it, and not cached.
  use_auto_auth_token = true
}

# Loopback only: anyone who can connect reads with the proxy's token, so the
# listener must be reachable by the connectors on this host and nobody else
# (use a unix socket with tight permissions where you can).
listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
