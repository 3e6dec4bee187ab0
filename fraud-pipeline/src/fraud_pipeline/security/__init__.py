"""Card data and who touches it: masking (every sink, logs included), the audit trail, accounts
and roles."""
