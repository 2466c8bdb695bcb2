"""Processor plugins: the base class (`base`), the registry (`registry`), the sandbox adapter."""

from tradeflow.payments.processors.base import (
    AuthorizeRequest,
    ChargeState,
    Processor,
    ProcessorConfig,
    ProcessorEvent,
    ProcessorOutcomeUnknown,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundState,
)
from tradeflow.payments.processors.registry import available, processor_class

__all__ = [
    "AuthorizeRequest",
    "ChargeState",
    "Processor",
    "ProcessorConfig",
    "ProcessorEvent",
    "ProcessorOutcomeUnknown",
    "ProcessorRejected",
    "ProcessorUnavailable",
    "RefundState",
    "available",
    "processor_class",
]
