#!/usr/bin/env python3
"""flowcred.py: a Python connector reading a credential handle from flowcred
with the standard library only. It reads <mount>/token/<handle>, caches the
material until 90% of its lease (or, without a lease, of data.ttl) has passed,
injects data.headers into its API calls, and branches on the answer: 404 (no
binding), 400 "needs_reauth: ..." and 400 "needs_authorization: ..." (a person
must connect the binding).

    VAULT_ADDR=... VAULT_TOKEN=... python3 flowcred.py HANDLE [API_URL]

Optional: FLOWCRED_MOUNT (default flowcred), VAULT_NAMESPACE, FLOWCRED_CALLS
(API calls to make, default 1), FLOWCRED_CALL_INTERVAL (seconds between them).
Exit codes: 0 ok, 1 other error, 2 no binding, 3 needs_reauth,
4 needs_authorization. The token is never printed.
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class FlowcredError(Exception):
    """kind: not_bound, needs_reauth, needs_authorization or error."""

    def __init__(self, kind, status, message):
        super().__init__(message)
        self.kind, self.status = kind, status


class Flowcred:
    def __init__(self, addr, token, namespace=None, mount="flowcred"):
        self.addr, self.token, self.namespace, self.mount = addr.rstrip("/"), token, namespace, mount
        self.cache = {}  # handle -> (material, until)
        self.reads = 0

    def material(self, handle):
        """Data of token/<handle>: access_token, headers, ..."""
        hit = self.cache.get(handle)
        if hit and time.monotonic() < hit[1]:
            return hit[0]
        req = urllib.request.Request(f"{self.addr}/v1/{self.mount}/token/{urllib.parse.quote(handle)}")
        req.add_header("X-Vault-Token", self.token)
        if self.namespace:
            req.add_header("X-Vault-Namespace", self.namespace)
        self.reads += 1
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            raise answer_error(e.code, e.read()) from None
        # Read again once 90% of the lease (or of data.ttl) is over.
        seconds = body.get("lease_duration") or body["data"].get("ttl") or 0
        self.cache[handle] = (body["data"], time.monotonic() + seconds * 0.9)
        return body["data"]


def answer_error(status, raw):
    """Branch on the status and the message's leading word only. Vault wraps
    some messages ("1 error occurred: * ..."); that goes first."""
    try:
        msg = "; ".join(json.loads(raw).get("errors") or [])
    except ValueError:
        msg = ""
    msg = " ".join(re.sub(r"^\d+ errors? occurred:\s*\*\s*", "", msg).split())
    word = re.match(r"^(\w+):", msg)
    word = word.group(1) if word else None
    if status == 404:
        return FlowcredError("not_bound", status, msg or "no binding (or nothing mounted)")
    if status == 400 and word in ("needs_reauth", "needs_authorization"):
        return FlowcredError(word, status, msg)
    return FlowcredError("error", status, f"HTTP {status}: {msg}")


EXIT_CODES = {"error": 1, "not_bound": 2, "needs_reauth": 3, "needs_authorization": 4}


def main(argv):
    handle = argv[1]
    api_url = argv[2] if len(argv) > 2 else None
    fc = Flowcred(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"],
                  os.environ.get("VAULT_NAMESPACE"), os.environ.get("FLOWCRED_MOUNT") or "flowcred")
    calls = int(os.environ.get("FLOWCRED_CALLS") or 1)
    interval = float(os.environ.get("FLOWCRED_CALL_INTERVAL") or 0)
    try:
        for i in range(1, calls + 1):
            if i > 1:
                time.sleep(interval)
            m = fc.material(handle)
            if api_url:
                with urllib.request.urlopen(urllib.request.Request(api_url, headers=m["headers"]), timeout=10) as resp:
                    print(f"call {i}: HTTP {resp.status}")
        print(f"ok handle={handle} vault_reads={fc.reads} calls={calls}")
        return 0
    except FlowcredError as err:
        if err.kind == "not_bound":
            print(f"not_bound: handle {handle} has no binding: {err}")
        elif err.kind in ("needs_reauth", "needs_authorization"):
            print(f"{err.kind}: ask an operator to connect the binding: {err}")
        else:
            print(f"error: {err}")
        return EXIT_CODES[err.kind]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
