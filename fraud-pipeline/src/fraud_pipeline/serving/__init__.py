"""Serving: the SageMaker-protocol model server, the endpoint client that calls it, and SageMaker deployment."""
