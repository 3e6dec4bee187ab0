"""Ingest: payments from the API to a validated frame; the card number is tokenised here and never goes further."""
