"""Metadata: the embedded database and the indexes kept in it, all derived from storage."""
