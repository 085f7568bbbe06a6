"""One contract suite per port, run against every adapter of that port."""
