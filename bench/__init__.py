"""`make bench`: performance claims, each measured against its naive peer in the same run."""
