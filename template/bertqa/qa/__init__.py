"""The QA logic, pure (numpy and tokenizers, no Beam): windows, answer decoding, SQuAD scores, tokenizers."""
