"""Grafana side of the definitions pipeline: render, validate, the HTTP client, push/compare, provisioning."""
