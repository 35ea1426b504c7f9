"""Packaged pre-training configs (TOML data files): tiny, paper, paper-v1."""
