"""What faces Dataflow: arguments, metadata.json, the launch request, checks before a job starts, worker resources."""
