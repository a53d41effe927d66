"""The TPU code generator: graph regions tiled into instruction streams for runtime/tpu."""
