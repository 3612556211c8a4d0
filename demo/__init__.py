"""The demo stack: a breaker-protected RAG service and the fake upstreams it calls."""
