"""Development tools that are not part of the service (not packaged)."""
