"""Catalog: products, SKUs, images, price lists, contract prices and the one pricing function."""
