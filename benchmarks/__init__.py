"""The benchmark suite: tessel against NumPy, JAX and ONNX Runtime (`python -m benchmarks`)."""
