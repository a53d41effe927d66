"""The default pipeline of each target, in one place."""

# Cleanup first so that decomposition and fusion see a small graph; cleanup again after
# decomposition because composites expand into foldable and shareable pieces.
_CLEANUP = "canonicalize,fold,cse,dce"


def _cpu_widen() -> str:
    """bf16 dot_generals stay bf16 where the cpu backend's bf16 GEMM has AMX-BF16 or AVX-512
    BF16 to run on (six times the f32 GEMM at 1024^3); elsewhere they are widened to run on the
    f32 GEMM, faster than that kernel's portable loop (passes/widen.py)."""
    from codegen.cpu_caps import host_caps
    from codegen.gemm_bf16 import supported

    return "widen-products{bf16-dots=false}" if supported(host_caps()) else "widen-products"


DEFAULT_PIPELINES: dict[str, str] = {
    "interp": _CLEANUP,
    # the cpu backend has a one-kernel row softmax, faster than the four decomposed kernels,
    # so it keeps softmax and recognizes the one traced NumPy code spells out
    # and computes f16/bf16 products on its f32 GEMM (exact: widen-products), bf16 dots on
    # its bf16 GEMM where the host has the units; its int8 GEMM
    # applies epilogues (bias, requantize, dequantize), its int8 convolution does not, so
    # integer conv2ds stay unfused
    "cpu": f"{_CLEANUP},recompose,decompose{{softmax=false}},{_cpu_widen()},{_CLEANUP},"
    "fuse{int-epilogue=dot_general},buffer-assign",
    # contractions the chip can run become `fusion {device = tpu}`; the host stages get the
    # cpu pipeline when the TPU backend compiles them
    "tpu": f"{_CLEANUP},decompose{{softmax=false}},{_CLEANUP},tpu-place",
}
