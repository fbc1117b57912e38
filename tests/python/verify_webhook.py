"""Verifies a callback with the reference Standard Webhooks library.

Usage: verify_webhook.py SECRET < request.json, where request.json is
{"headers": {...}, "body": "..."}. Prints "ok" and exits 0 when the signature verifies,
prints the library's error and exits 1 otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
try:
    Webhook(sys.argv[1]).verify(request["body"], request["headers"])
except WebhookVerificationError as e:
    print(f"rejected: {e}")
    sys.exit(1)
print("ok")
