"""Records and files: strict JSON, JSON streaming, question records, input and output files, BigQuery's tables,
model and tokenizer files on any Beam filesystem (local, gs://)."""
