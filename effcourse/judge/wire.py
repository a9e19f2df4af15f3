"""Plain data between the judge and a student's kernel: framing and encoding, no pickle.

A message is ``[8-byte header length][JSON header][blob 0][blob 1]...``; the header lists the
blobs' lengths. Values are JSON with tagged objects for what JSON lacks::

    tensor      {"$": "tensor", "dtype": "float32", "shape": [2, 3], "blob": 0, "rg": false, "grad": ...}
    tuple       {"$": "tuple", "v": [...]}        dict  {"$": "dict", "v": [[key, value], ...]}
    dtype       {"$": "dtype", "v": "float64"}    device {"$": "device", "v": "cpu"}
    generator   {"$": "generator", "blob": 1}     (its state, a uint8 tensor's bytes)
    slice       {"$": "slice", "v": [start, stop, step]}     Ellipsis {"$": "..."}
    ndarray     {"$": "ndarray", ...tensor fields}   bytes {"$": "bytes", "blob": 2}
    ref         {"$": "ref", "id": 7, "type": "module.Class"}  an object that stays in the kernel
    name        {"$": "name", "v": "temporal_shift"}          a global of the student's notebook

Tensors travel as raw little-endian bytes of a contiguous CPU copy with their dtype and shape;
decoding checks that the byte count matches and that dtype is on the allow-list. Nothing here
ever builds an object of a type the sender chose, so a hostile sender can only send wrong numbers.
"""
from __future__ import annotations

import json
import socket
import struct
from typing import Any, Callable

import torch

#: the largest message either side accepts (bytes)
MAX_MESSAGE = 256 * 2**20
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}


class WireError(Exception):
    """A malformed or oversized message."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        buf += chunk
    return bytes(buf)


def send(sock: socket.socket, header: dict, blobs: list[bytes]) -> None:
    header = {**header, "blobs": [len(b) for b in blobs]}
    head = json.dumps(header, allow_nan=True).encode()
    sock.sendall(struct.pack("<Q", len(head)) + head)
    for b in blobs:
        sock.sendall(b)


def recv(sock: socket.socket) -> tuple[dict, list[bytes]]:
    (n,) = struct.unpack("<Q", _recv_exact(sock, 8))
    if n > 16 * 2**20:
        raise WireError(f"a message header of {n} bytes is too large")
    header = json.loads(_recv_exact(sock, n))
    sizes = header.get("blobs", [])
    if not isinstance(header, dict) or not isinstance(sizes, list) \
            or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise WireError("a message header is malformed")
    if sum(sizes) > MAX_MESSAGE:
        raise WireError(f"a message of {sum(sizes)} bytes is larger than the {MAX_MESSAGE} byte limit")
    return header, [_recv_exact(sock, s) for s in sizes]


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes() if t.numel() else b""


def tensor_from(meta: dict, blob: bytes) -> torch.Tensor:
    dtype = _DTYPES.get(meta.get("dtype"))
    shape = meta.get("shape")
    if dtype is None or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"a tensor with dtype {meta.get('dtype')!r} and shape {shape!r} cannot be decoded")
    numel = 1
    for s in shape:
        numel *= s
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(blob) != numel * itemsize:
        raise WireError(f"a tensor of shape {shape} and dtype {meta['dtype']} came with {len(blob)} bytes")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(blob), dtype=torch.int16 if dtype == torch.bfloat16 else dtype)
    return raw.view(dtype).reshape(shape).clone() if dtype == torch.bfloat16 else raw.reshape(shape)


class Encoder:
    """Turns a value into JSON plus blobs. ``other(obj)`` encodes what is not plain data (the
    kernel keeps such objects and sends a ref; the judge refuses them)."""

    def __init__(self, other: Callable[[Any], dict], grads: bool = True):
        self.blobs: list[bytes] = []
        self.other = other
        self.grads = grads
        self.tensors: list[tuple[torch.Tensor, dict]] = []     # every tensor encoded, with its JSON

    def blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def tensor(self, t: torch.Tensor, tag: str = "tensor") -> dict:
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        if t.is_quantized or t.is_meta:
            raise WireError("quantized or meta tensors cannot travel")
        if t.is_complex() and t.is_conj():
            t = t.resolve_conj()
        d = {"$": tag, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
             "blob": self.blob(tensor_bytes(t)), "rg": bool(t.requires_grad)}
        if self.grads and t.is_leaf and t.grad is not None:
            d["grad"] = self.tensor(t.grad)
        self.tensors.append((t, d))
        return d

    def __call__(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, torch.Size):
            return {"$": "tuple", "v": [int(s) for s in v]}
        if isinstance(v, tuple):
            return {"$": "tuple", "v": [self(x) for x in v]}
        if type(v) is list:
            return [self(x) for x in v]
        if isinstance(v, dict) and all(type(k) in (str, int, float, bool, tuple) for k in v):
            return {"$": "dict", "v": [[self(k), self(x)] for k, x in v.items()]}
        if isinstance(v, torch.dtype):
            return {"$": "dtype", "v": str(v).removeprefix("torch.")}
        if isinstance(v, torch.device):
            return {"$": "device", "v": str(v)}
        if isinstance(v, torch.Generator):
            return {"$": "generator", "blob": self.blob(tensor_bytes(v.get_state()))}
        if isinstance(v, slice):
            return {"$": "slice", "v": [self(v.start), self(v.stop), self(v.step)]}
        if v is Ellipsis:
            return {"$": "..."}
        if isinstance(v, (bytes, bytearray)):
            return {"$": "bytes", "blob": self.blob(bytes(v))}
        try:
            import numpy as np
            if isinstance(v, np.generic):
                return self(v.item())
            if isinstance(v, np.ndarray) and v.dtype != object:
                return self.tensor(torch.from_numpy(np.ascontiguousarray(v)), "ndarray")
        except ImportError:     # pragma: no cover
            pass
        return self.other(v)


class Decoder:
    """Turns JSON plus blobs back into values. ``ref(d)`` and ``name(d)`` resolve references."""

    def __init__(self, blobs: list[bytes], ref: Callable[[dict], Any], name: Callable[[dict], Any] | None = None):
        self.blobs = blobs
        self.ref = ref
        self.name = name
        self.tensors: list[tuple[torch.Tensor, dict]] = []

    def blob(self, i: Any) -> bytes:
        if not isinstance(i, int) or not 0 <= i < len(self.blobs):
            raise WireError(f"a value names blob {i!r}, which the message does not have")
        return self.blobs[i]

    def tensor(self, d: dict) -> torch.Tensor:
        t = tensor_from(d, self.blob(d.get("blob")))
        if isinstance(d.get("grad"), dict) and d["grad"].get("$") == "tensor":
            g = self.tensor(d["grad"])
            if g.shape == t.shape and g.dtype == t.dtype:
                t.grad = g
        self.tensors.append((t, d))
        return t

    def __call__(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self(x) for x in v]
        if not isinstance(v, dict):
            raise WireError(f"cannot decode a {type(v).__name__}")
        tag = v.get("$")
        if tag == "tensor":
            return self.tensor(v)
        if tag == "ndarray":
            return self.tensor(v).numpy()
        if tag == "tuple":
            return tuple(self(x) for x in v.get("v", []))
        if tag == "dict":
            return {self._key(k): self(x) for k, x in v.get("v", [])}
        if tag == "dtype":
            d = _DTYPES.get(v.get("v"))
            if d is None:
                raise WireError(f"unknown dtype {v.get('v')!r}")
            return d
        if tag == "device":
            return torch.device(str(v.get("v")))
        if tag == "generator":
            g = torch.Generator()
            g.set_state(torch.frombuffer(bytearray(self.blob(v.get("blob"))), dtype=torch.uint8).clone())
            return g
        if tag == "slice":
            return slice(*[self(x) for x in v.get("v", [None, None, None])][:3])
        if tag == "...":
            return Ellipsis
        if tag == "bytes":
            return self.blob(v.get("blob"))
        if tag == "ref":
            return self.ref(v)
        if tag == "name" and self.name is not None:
            return self.name(v)
        raise WireError(f"unknown value tag {tag!r}")

    def _key(self, k: Any) -> Any:
        k = self(k)
        if isinstance(k, list):
            k = tuple(k)
        if not isinstance(k, (str, int, float, bool, tuple, type(None))):
            raise WireError("a dict key must be plain data")
        return k
