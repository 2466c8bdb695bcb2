from customers.fixtures import _cheap_password_hashing, app, other_seller, seller

__all__ = ["_cheap_password_hashing", "app", "other_seller", "seller"]
