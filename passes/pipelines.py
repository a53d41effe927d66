"""Each target's default pipeline, built from what the target can do (never by probing the host:
the caller passes that in; compiler/targets.py derives it from the target's options)."""

# Cleanup first so that decomposition and fusion see a small graph; cleanup again after
# decomposition because composites expand into foldable and shareable pieces.
CLEANUP = "canonicalize,fold,cse,dce"


def interp_pipeline() -> str:
    return CLEANUP


def cpu_pipeline(bf16_dots: bool = False) -> str:
    """The cpu backend has a one-kernel row softmax, faster than the four decomposed kernels, so
    it keeps softmax and recognizes the one traced NumPy code spells out. It computes f16/bf16
    products on its f32 GEMM (exact: widen-products), except bf16 dots where `bf16_dots` says
    its bf16 GEMM has AMX-BF16 or AVX-512 BF16 to run on (six times the f32 GEMM at 1024^3;
    elsewhere that kernel is not used). Its int8 GEMM applies epilogues (bias, requantize,
    dequantize); its int8 convolution does not, so integer conv2ds stay unfused. Complex
    numbers compute as pairs of reals (expand-complex)."""
    widen = "widen-products{bf16-dots=false}" if bf16_dots else "widen-products"
    return (
        f"{CLEANUP},recompose,decompose{{softmax=false}},expand-complex,{widen},{CLEANUP},"
        "fuse{int-epilogue=dot_general},buffer-assign"
    )


def tpu_pipeline(multiplier: str = "int8") -> str:
    """Contractions the chip can run become `fusion {device = tpu}`; the host stages get the cpu
    pipeline when the TPU backend compiles them. A chip with bf16 multipliers runs float
    contractions as bf16 ones (bf16 operands, f32 sums)."""
    place = "tpu-place"
    if multiplier == "bf16":
        place = f"bf16-mixed,{CLEANUP},tpu-place{{multiplier=bf16}}"
    return f"{CLEANUP},decompose{{softmax=false}},{CLEANUP},{place}"
