"""Discrepancy service: joins ML and human scores per inspection and feeds the curation queue."""
