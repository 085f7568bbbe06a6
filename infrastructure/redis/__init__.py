"""Redis adapters: cache, running registry and inspector, all surviving an outage."""
