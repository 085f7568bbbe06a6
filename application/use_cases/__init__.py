"""One class per use case, each with one public method, each owning its transaction."""
