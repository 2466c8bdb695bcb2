"""Customers: customer companies, customer groups, buyer users' profiles and approvers."""
