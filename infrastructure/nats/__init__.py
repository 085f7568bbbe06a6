"""NATS JetStream adapters: the relay's destination for the change feed."""
