"""The curated TFDV schema, shipped as package data: found wherever the package is installed."""
import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(SCHEMA_DIR, "impressions.pbtxt")
