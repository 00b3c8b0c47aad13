"""Thin adapters, one per library. Each imports its library inside functions (so `reprotrain
--help` stays fast) and turns the library's exceptions into reprotrain's own."""
