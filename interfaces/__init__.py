"""The ways in: HTTP app, CLI, settings and the composition root."""
