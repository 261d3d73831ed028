#!/usr/bin/env python3
"""A full workload against a zero-sync Ceneca, for scripts/zero-sync-proof: accounts,
content, batches, search, vectors, provider configs, and attempts to store or configure
references outside the network (each must be refused). Standard library only.

Usage: zero_sync_workload.py BASE_URL
Exits non-zero, saying what went wrong, if any answer is not the expected one."""

import json
import sys
import time
import urllib.error
import urllib.request

BASE = sys.argv[1]
DIMS = 4


def call(method, path, body=None, token=None, expect=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = "Bearer " + token
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    reply = json.loads(raw) if raw else None
    if expect is not None and status != expect:
        sys.exit(f"{method} {path}: expected {expect}, got {status}: {reply}")
    return reply


for _ in range(300):
    try:
        urllib.request.urlopen(BASE + "/readyz", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("the server did not become ready")

token = call("POST", "/api/v1/auth/register",
             {"email": "ops@example.com", "password": "zero sync proof", "display_name": "Ops"},
             expect=201)["token"]
token = call("POST", "/api/v1/auth/login",
             {"email": "ops@example.com", "password": "zero sync proof"}, expect=200)["token"]
ws = call("POST", "/api/v1/workspaces", {"name": "Air gap"}, token, 201)["id"]
project = call("POST", "/api/v1/projects", {"workspace_id": ws, "name": "P"}, token, 201)["id"]
thread = call("POST", "/api/v1/threads",
              {"workspace_id": ws, "project_id": project, "title": "Launch"}, token, 201)["id"]
items = [{"role": "user", "content": f"message {i} about the zebra release 1.2.{i}"}
         for i in range(200)]
messages = call("POST", f"/api/v1/threads/{thread}/messages/batch", {"items": items}, token, 201)
call("POST", "/api/v1/documents",
     {"workspace_id": ws, "title": "Runbook", "body": "Restart http://10.0.0.5:8080 then check"},
     token, 201)
call("GET", f"/api/v1/threads/{thread}/messages?limit=50", token=token, expect=200)
call("GET", "/api/v1/search?q=zebra", token=token, expect=200)
call("POST", "/api/v1/provider-configs",
     {"provider": "ollama", "name": "local", "base_url": "http://localhost:11434"}, token, 201)
first = messages["items"][0]["id"]
call("POST", "/api/v1/vectors/messages/points?wait=true",
     {"workspace_id": ws, "source_id": first, "vector": [1.0, 0.0, 0.0, 0.0]}, token, 200)
hits = call("POST", "/api/v1/vectors/messages/search", {"vector": [1.0, 0.0, 0.0, 0.0]}, token, 200)
if not hits["items"]:
    sys.exit("vector search found nothing")
call("POST", "/api/v1/search/hybrid", {"q": "zebra", "vector": [1.0, 0.0, 0.0, 0.0]}, token, 200)

# What must be refused: stored references outside, configurations pointing outside,
# features that do not exist in this edition.
for content in ["see https://api.openai.com/v1", "http://134744072/", "curl evil.example.com",
                "https%3A%2F%2Fevil.example.com%2F", "ping 8.8.8.8"]:
    call("POST", f"/api/v1/threads/{thread}/messages", {"role": "user", "content": content},
         token, 422)
for base_url in ["https://api.openai.com/v1", "http://8.8.8.8/", "http://169.254.169.254/"]:
    call("POST", "/api/v1/provider-configs",
         {"provider": "openai", "name": "cloud", "base_url": base_url}, token, 422)
call("POST", "/api/v1/provider-configs", {"provider": "openai", "name": "default"}, token, 422)
call("POST", "/api/v1/telemetry/export", None, token, 404)
print("workload done")
