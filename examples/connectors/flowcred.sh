#!/usr/bin/env bash
# flowcred.sh: a shell connector reading a credential handle from flowcred with curl and jq.
# It reads <mount>/token/<handle>, caches the answer in a shell variable until 90% of its lease
# (or, without a lease, of data.ttl) has passed, injects data.headers into its API calls, and
# branches on the answer: 404 (no binding), 400 "needs_reauth: ..." and 400
# "needs_authorization: ..." (a person must connect the binding).
#
#   VAULT_ADDR=... VAULT_TOKEN=... flowcred.sh HANDLE [API_URL]
#
# Optional: FLOWCRED_MOUNT (default flowcred), VAULT_NAMESPACE, FLOWCRED_CALLS (API calls to make,
# default 1), FLOWCRED_CALL_INTERVAL (seconds between them). Exit codes: 0 ok, 1 other error,
# 2 no binding, 3 needs_reauth, 4 needs_authorization. Needs curl >= 7.55 and jq.
#
# Tokens stay off the command line (visible in ps) and off the disk: headers go to curl on stdin
# (-H @-), and the answer stays in a variable. A script run once per API call caches nothing:
# run Vault Agent (examples/agent) in front of it instead.
set -euo pipefail

FC_MOUNT="${FLOWCRED_MOUNT:-flowcred}"
FC_BODY=""     # the last token/<handle> answer (JSON); holds the token
FC_UNTIL=0     # epoch second from which FC_BODY is read again
FC_READS=0
FC_ERROR=""    # the message of the last failed read

# vault_headers prints the request headers for Vault, one per line.
vault_headers() {
  printf 'X-Vault-Token: %s\n' "$VAULT_TOKEN"
  if [[ -n "${VAULT_NAMESPACE:-}" ]]; then printf 'X-Vault-Namespace: %s\n' "$VAULT_NAMESPACE"; fi
}

# flowcred_read HANDLE: fill FC_BODY, from the cache while it is fresh. Returns 0, or the exit code
# of the answer (2 no binding, 3 needs_reauth, 4 needs_authorization, 1 other) with FC_ERROR set.
flowcred_read() {
  local handle="$1" now resp status body msg seconds
  now=$(date +%s)
  if [[ -n "$FC_BODY" && $now -lt $FC_UNTIL ]]; then return 0; fi
  FC_READS=$((FC_READS + 1))
  resp=$(vault_headers | curl -sS --max-time 10 -H @- -w '\n%{http_code}' "$VAULT_ADDR/v1/$FC_MOUNT/token/$handle") || {
    FC_ERROR="Vault unreachable"
    return 1
  }
  status=${resp##*$'\n'}
  body=${resp%$'\n'*}
  if [[ $status == 200 ]]; then
    FC_BODY=$body
    # Read again once 90% of the lease (or of data.ttl) is over.
    seconds=$(printf '%s' "$body" | jq -r 'if .lease_duration > 0 then .lease_duration else (.data.ttl // 0) end')
    FC_UNTIL=$((now + seconds - seconds / 10))
    return 0
  fi
  # Branch on the status and the message's leading word only. Vault wraps some messages
  # ("1 error occurred:\n\t* ..."); that goes first.
  msg=$(printf '%s' "$body" | jq -r '(.errors // []) | join("; ") | sub("^[0-9]+ errors? occurred:\\s*\\*\\s*"; "") | gsub("\\s+"; " ") | sub(" $"; "")' 2>/dev/null || true)
  FC_ERROR=$msg
  case "$status:${msg%%:*}" in
    404:*) FC_ERROR=${msg:-no binding (or nothing mounted)}; return 2 ;;
    400:needs_reauth) return 3 ;;
    400:needs_authorization) return 4 ;;
    *) FC_ERROR="HTTP $status: $msg"; return 1 ;;
  esac
}

# flowcred_headers prints the material's headers, one "Name: value" per line, for curl -H @-.
flowcred_headers() {
  printf '%s' "$FC_BODY" | jq -r '.data.headers | to_entries[] | "\(.key): \(.value)"'
}

main() {
  local handle="$1" api_url="${2:-}" calls="${FLOWCRED_CALLS:-1}" i rc=0 code
  for ((i = 1; i <= calls; i++)); do
    if ((i > 1)); then sleep "${FLOWCRED_CALL_INTERVAL:-0}"; fi
    flowcred_read "$handle" || { rc=$?; break; }
    if [[ -n "$api_url" ]]; then
      code=$(flowcred_headers | curl -sS --max-time 10 -H @- -o /dev/null -w '%{http_code}' "$api_url")
      echo "call $i: HTTP $code"
    fi
  done
  case $rc in
    0) echo "ok handle=$handle vault_reads=$FC_READS calls=$calls" ;;
    2) echo "not_bound: handle $handle has no binding: $FC_ERROR" ;;
    3) echo "needs_reauth: ask an operator to connect the binding: $FC_ERROR" ;;
    4) echo "needs_authorization: ask an operator to connect the binding: $FC_ERROR" ;;
    *) echo "error: $FC_ERROR" ;;
  esac
  return "$rc"
}

main "$@"
