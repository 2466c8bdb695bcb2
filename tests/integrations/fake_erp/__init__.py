"""The reference fake ERP used by the connector tests (see `app.py`)."""
