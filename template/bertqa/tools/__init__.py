"""Developer commands (export-onnx, build-engine, benchmark); never imported by the workers."""
