"""Authentication (TLS, SASL), authorization (ACLs) and quotas."""
