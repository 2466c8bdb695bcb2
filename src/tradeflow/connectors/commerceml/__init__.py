"""CommerceML 2 connector: 1C:Enterprise exchanges its catalog, prices and orders with Tradeflow."""
