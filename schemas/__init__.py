"""Curated TFDV schemas (data files)."""
