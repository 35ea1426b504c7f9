"""Corpora on disk (or S3) -> clip catalog + WebDataset shards."""
