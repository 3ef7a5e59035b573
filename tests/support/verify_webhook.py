"""Verifies one obgate webhook delivery with the official Standard Webhooks library.

Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 when the signature verifies,
1 (with the library's error) when it does not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

data = json.load(sys.stdin)
try:
    Webhook(data["secret"]).verify(data["body"], data["headers"])
except Exception as e:  # the library raises WebhookVerificationError
    print(f"verification failed: {e}", file=sys.stderr)
    sys.exit(1)
print("verified")
