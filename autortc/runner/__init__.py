"""Runs suites: one room per case (or one conversation room), artifacts per trace_id, then metrics, gates, report."""
