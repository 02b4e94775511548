"""Small shared utilities: atomic file writes and provenance records."""
