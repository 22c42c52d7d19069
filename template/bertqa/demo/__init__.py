"""The bundled demo: a tiny BERT QA model trained on generated passages, and its sample questions."""
