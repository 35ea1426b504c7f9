"""The shard format and every way of reading it; shared plumbing (storage, audio, executors)."""
