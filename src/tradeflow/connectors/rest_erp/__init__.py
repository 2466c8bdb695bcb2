"""Generic REST ERP/CRM connector."""
