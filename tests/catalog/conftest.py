from customers.fixtures import app, other_seller, seller

__all__ = ["app", "other_seller", "seller"]
