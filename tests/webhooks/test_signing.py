"""Standard Webhooks signing: the spec's published test vector and the reference library."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tradeflow.events.registry import DeliveredEvent
from tradeflow.webhooks import signing
from tradeflow.webhooks.transport import message_body, parse_retry_after

# From the Standard Webhooks specification's reference test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reproduces_the_spec_test_vector() -> None:
    assert signing.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_generated_secret_has_spec_shape() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret[6:])) <= 64


def _event() -> DeliveredEvent:
    return DeliveredEvent(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        type="order.created",
        version=1,
        aggregate_type="order",
        aggregate_id="o-1",
        sequence=3,
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        payload={"total": 1250},
    )


def test_reference_library_verifies_our_headers() -> None:
    secret = signing.generate_secret()
    body = message_body(_event())
    headers = signing.headers([secret], "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_rotation_overlap_sends_both_signatures() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    body = b'{"a":1}'
    headers = signing.headers([new, old], "msg_2", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    # A receiver with either secret verifies; one with neither does not.
    assert Webhook(old).verify(body, headers)
    assert Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)


def test_tampered_body_fails_verification() -> None:
    secret = signing.generate_secret()
    headers = signing.headers([secret], "msg_3", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_body_envelope() -> None:
    body = json.loads(message_body(_event()))
    assert body["type"] == "order.created"
    assert body["timestamp"] == "2026-01-02T03:04:05Z"
    assert body["aggregate"] == {"type": "order", "id": "o-1", "sequence": 3}
    assert body["data"] == {"total": 1250}


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_body_keeps_values_orjson_refuses() -> None:
    """Integers beyond 64 bits are valid JSON in a payload: the body still carries them."""
    event = _event()
    big = replace(event, payload={"total": 2**70, "name": "Ёлка"})
    body = message_body(big)
    assert json.loads(body)["data"] == {"total": 2**70, "name": "Ёлка"}
    assert "Ёлка".encode() in body  # UTF-8, not \\u escapes
