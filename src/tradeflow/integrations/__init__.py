"""Integrations: connector plugins, the external-id map, sync conflicts and reconciliation.

Other contexts use `tradeflow.integrations.service`; plugins subclass the base
classes in `tradeflow.integrations.plugins`.
"""
