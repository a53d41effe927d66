"""The simulated TPU: its configuration, instruction set, assembler, simulator and reports."""
