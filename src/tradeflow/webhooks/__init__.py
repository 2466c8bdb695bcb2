"""Outbound webhook endpoints: Standard Webhooks signing, SSRF guard, the HTTP transport."""
