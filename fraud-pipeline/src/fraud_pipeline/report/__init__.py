"""The morning report's data and charts, read through the report's read-only role."""
