"""Request bodies and headers shared by the sandbox processor's tests."""

from __future__ import annotations

import uuid
from typing import Any


def charge(amount: int = 1000, **kw: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR", "payment_method": "pm_sandbox_ok", **kw}


def key() -> dict[str, str]:
    return {"idempotency-key": uuid.uuid4().hex}
