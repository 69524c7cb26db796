"""Ingest service: watches an imager's folder tree and turns each new image file into an ImageCaptured."""
