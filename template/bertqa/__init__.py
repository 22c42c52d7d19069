"""BERT SQuAD v2 question answering on Apache Beam / Dataflow."""
