"""Curation service: curator queue, plate map and dataset export (FastAPI + plain HTML/JS pages)."""
