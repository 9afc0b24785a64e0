"""Benchmarks: our checkpointer against the official langgraph-checkpoint-postgres saver."""
