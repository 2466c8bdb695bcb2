"""In-tree connector plugins (registered in the `tradeflow.connectors` entry-point group)."""
