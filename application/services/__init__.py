"""Small services the use cases share: payload routing, the record cache, publishing."""
