"""Element types, tensor types, attribute values and constant payloads."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ir.attrs import AttrKind, Attrs, AttrSpec, ConstData, WeightRef
from ir.dtypes import DType
from ir.types import TensorType

# --- DType --------------------------------------------------------------------------------------


def test_every_dtype_parses_from_its_spelling() -> None:
    for t in DType:
        assert DType.parse(str(t)) is t


@pytest.mark.parametrize("name", ["f31", "F32", "float32", "", "i32 "])
def test_unknown_dtype_names(name: str) -> None:
    names = "f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, bool, c64, c128"
    expected = f"unknown dtype '{name}' (expected one of {names})"
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        DType.parse(name)


def test_from_numpy_inverts_np_for_every_dtype() -> None:
    for t in DType:
        assert DType.from_numpy(t.np) is t


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (np.float32, DType.F32),  # a scalar type, not a dtype object
        (np.dtype("<f8"), DType.F64),
        ("int16", DType.I16),
        (np.bool_, DType.BOOL),
        (ml_dtypes.bfloat16, DType.BF16),
        (np.dtype(ml_dtypes.bfloat16), DType.BF16),
    ],
)
def test_from_numpy_accepts_any_dtype_spelling(spec: object, expected: DType) -> None:
    assert DType.from_numpy(spec) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        (np.clongdouble, "complex256"),
        (ml_dtypes.float8_e4m3fn, "float8_e4m3fn"),
    ],
)
def test_from_numpy_rejects_types_tessel_lacks(spec: type, shown: str) -> None:
    with pytest.raises(ValueError, match=f"^numpy dtype {shown} has no tessel equivalent$"):
        DType.from_numpy(spec)


def test_dtype_properties() -> None:
    assert [t.itemsize for t in DType] == [8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 8, 16]
    assert {t for t in DType if t.is_complex} == {DType.C64, DType.C128}
    assert [DType.C64.real_part, DType.C128.real_part, DType.F16.real_part] == [
        DType.F32,
        DType.F64,
        DType.F16,
    ]
    assert {t for t in DType if t.is_float} == {DType.F64, DType.F32, DType.F16, DType.BF16}
    signed = {DType.I64, DType.I32, DType.I16, DType.I8}
    unsigned = {DType.U64, DType.U32, DType.U16, DType.U8}
    assert {t for t in DType if t.is_int} == signed | unsigned
    assert {t for t in DType if t.is_int and t.is_signed} == signed
    assert DType.BF16.is_signed
    assert DType.I8.is_signed
    assert not DType.BOOL.is_signed
    assert not DType.BOOL.is_int
    assert not DType.BOOL.is_float
    assert repr(DType.BF16) == "DType.BF16"


# --- TensorType ---------------------------------------------------------------------------------


def test_tensor_type_prints_as_in_graph_files() -> None:
    assert str(TensorType((2, 3), DType.F32)) == "f32[2,3]"
    assert str(TensorType((), DType.BOOL)) == "bool[]"
    assert str(TensorType((0, 4), DType.BF16)) == "bf16[0,4]"


def test_tensor_type_sizes() -> None:
    t = TensorType((2, 3, 4), DType.BF16)
    assert (t.rank, t.size, t.nbytes) == (3, 24, 48)
    scalar = TensorType((), DType.F64)
    assert (scalar.rank, scalar.size, scalar.nbytes) == (0, 1, 8)
    empty = TensorType((3, 0), DType.I32)
    assert (empty.rank, empty.size, empty.nbytes) == (2, 0, 0)


def test_tensor_type_is_a_value() -> None:
    t = TensorType((2, 3), DType.F32)
    assert t == TensorType((2, 3), DType.F32)
    assert hash(t) == hash(TensorType((2, 3), DType.F32))
    assert t != TensorType((3, 2), DType.F32)
    assert t != TensorType((2, 3), DType.F16)
    assert t.with_shape((6,)) == TensorType((6,), DType.F32)
    assert t.with_dtype(DType.I8) == TensorType((2, 3), DType.I8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.shape = (1,)  # type: ignore[misc]


@pytest.mark.parametrize("shape", [(2, -1), (2.0,), (True,), (np.int64(2),)], ids=repr)
def test_tensor_type_rejects_bad_dimensions(shape: tuple[object, ...]) -> None:
    with pytest.raises(
        ValueError, match=r"^invalid shape .*: dimensions must be non-negative ints$"
    ):
        TensorType(shape, DType.F32)  # type: ignore[arg-type]


# --- ConstData ----------------------------------------------------------------------------------


def test_equal_content_means_equal_and_same_hash() -> None:
    a = ConstData(np.array([[1.0, 2.0]], np.float32))
    b = ConstData(np.array([[1.0, 2.0]], np.float32), source=WeightRef(Path("/w.npz"), "w"))
    assert a == b  # where the data came from is not part of its value
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [
        np.array([[1.0, 2.0]], np.float64),  # same numbers, other dtype
        np.array([1.0, 2.0], np.float32),  # same bytes, other shape
        np.array([[1.0, 3.0]], np.float32),
        np.array([[1.0, 2.0]], ml_dtypes.bfloat16),
    ],
)
def test_different_content_is_unequal(other: np.ndarray) -> None:
    assert ConstData(np.array([[1.0, 2.0]], np.float32)) != ConstData(other)


def test_compared_by_bits_zeros_differ_nans_match() -> None:
    assert ConstData(np.array(0.0, np.float32)) != ConstData(np.array(-0.0, np.float32))
    assert ConstData(np.array(np.nan, np.float32)) == ConstData(np.array(np.nan, np.float32))


def test_same_bytes_other_dtype_is_unequal() -> None:
    zeros = np.zeros(4, np.int32)
    assert ConstData(zeros) != ConstData(zeros.view(np.float32))


def test_const_data_owns_a_read_only_copy() -> None:
    source = np.array([1, 2, 3], np.int8)
    data = ConstData(source)
    source[0] = 100
    assert data.array.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="read-only"):
        data.array[0] = 5
    assert ConstData(np.array([1, 2, 3], np.int8)) == data


def test_const_data_repr() -> None:
    assert repr(ConstData(np.zeros((2, 3), np.float32))) == "ConstData(float32[2, 3])"
    assert repr(ConstData(np.zeros(2, ml_dtypes.bfloat16))) == "ConstData(bfloat16[2])"


# --- Attrs --------------------------------------------------------------------------------------


def test_attrs_are_a_sorted_read_only_mapping() -> None:
    items = {"b": (1, 2), "a": DType.F32}
    attrs = Attrs(items)
    assert list(attrs) == ["a", "b"]
    assert attrs["b"] == (1, 2)
    assert attrs.get("missing", 7) == 7
    assert len(attrs) == 2
    with pytest.raises(KeyError):
        attrs["missing"]
    items["c"] = 3  # the mapping it was made from can change; the Attrs cannot
    assert "c" not in attrs
    with pytest.raises(TypeError):
        attrs["a"] = DType.F16  # type: ignore[index]
    with pytest.raises(TypeError):
        del attrs["a"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        attrs.extra = 1  # type: ignore[attr-defined]
    assert repr(attrs) == "Attrs(a=DType.F32, b=(1, 2))"


def test_attrs_replace_returns_a_new_mapping() -> None:
    attrs = Attrs({"axis": 0})
    changed = attrs.replace(axis=1, kind="sum")
    assert attrs == {"axis": 0}
    assert changed == {"axis": 1, "kind": "sum"}


def test_attrs_equality_and_hash_ignore_insertion_order() -> None:
    a = Attrs({"x": 1, "y": (2, 3)})
    b = Attrs({"y": (2, 3), "x": 1})
    assert a == b
    assert hash(a) == hash(b)
    assert a == {"x": 1, "y": (2, 3)}
    assert a != Attrs({"x": 1, "y": (3, 2)})
    assert a != Attrs({"x": 1})


def test_attrs_values_must_be_hashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        Attrs({"perm": [1, 0]})


@pytest.mark.parametrize(
    ("kind", "value", "canonical"),
    [
        (AttrKind.INT, np.int64(3), 3),
        (AttrKind.INTS, [1, np.int32(2)], (1, 2)),
        (AttrKind.INT_PAIRS, [[0, 1], (2, 3)], ((0, 1), (2, 3))),
        (AttrKind.PADDING, "same", "same"),
        (AttrKind.PADDING, [[1, 1], [0, 2]], ((1, 1), (0, 2))),
        (AttrKind.DTYPE, "bf16", DType.BF16),
        (AttrKind.BOOL, False, False),
        (AttrKind.FLOAT, 2, 2.0),
    ],
)
def test_attr_values_are_brought_to_canonical_form(
    kind: AttrKind, value: object, canonical: object
) -> None:
    out = AttrSpec(kind).check(value)
    assert out == canonical
    assert type(out) is type(canonical)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (AttrKind.INT, True, "expected an int, got true"),
        (AttrKind.INT, "1", "expected an int, got '1'"),
        (AttrKind.INTS, (1, 2.5), "expected a list of ints, got [1, 2.5]"),
        (AttrKind.FLOAT, True, "expected a number, got true"),
        (AttrKind.BOOL, 1, "expected true or false, got 1"),
        (
            AttrKind.PADDING,
            "full",
            "expected same, valid, or a list of [low, high] pairs, got 'full'",
        ),
        (AttrKind.INT_PAIRS, [[1, 2, 3]], "expected a list of [low, high] pairs, got [[1, 2, 3]]"),
        (
            AttrKind.DTYPE,
            "f8",
            "expected a dtype (f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, bool, "
            "c64, c128), "
            "got 'f8'",
        ),
    ],
)
def test_attr_value_errors(kind: AttrKind, value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        AttrSpec(kind).check(value)


def test_enum_attr_lists_its_choices() -> None:
    spec = AttrSpec(AttrKind.ENUM, choices=("sum", "max"))
    assert spec.check("max") == "max"
    with pytest.raises(ValueError, match=r"^expected one of sum, max, got 'avg'$"):
        spec.check("avg")
