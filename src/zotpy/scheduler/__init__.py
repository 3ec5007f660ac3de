"""The background process: periodic jobs (GC, scrub, ...) in one scheduler per storage root."""
