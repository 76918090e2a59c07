"""Minimal, dependency-free safetensors reader/writer for the test oracles.

File layout: 8-byte little-endian u64 N, then N bytes of JSON header
  {name: {"dtype": D, "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
then the raw little-endian tensor bytes (offsets are relative to the end of the header).
Supported dtypes: F32, F16, BF16, I64, I32. torch 1.13's numpy has no bfloat16, so BF16
bytes go through an int16 view of the same storage.
"""
import json
import struct

import numpy as np
import torch

# safetensors dtype -> (torch dtype, numpy dtype of the same width used for the raw bytes)
_DT = {
    "F32": (torch.float32, np.dtype("<f4")),
    "F16": (torch.float16, np.dtype("<f2")),
    "BF16": (torch.bfloat16, np.dtype("<i2")),  # bytes read as int16, then reinterpreted
    "I64": (torch.int64, np.dtype("<i8")),
    "I32": (torch.int32, np.dtype("<i4")),
}
_FROM_TORCH = {tdt: name for name, (tdt, _) in _DT.items()}


def load(path):
    """Returns {name: torch.Tensor} (contiguous, CPU, own memory). Metadata is ignored;
    use load_with_metadata for it."""
    return load_with_metadata(path)[0]


def load_with_metadata(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        tdt, ndt = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        shape = list(info["shape"])
        arr = np.frombuffer(data[b:e], dtype=ndt).copy()
        numel = int(np.prod(shape)) if shape else 1
        assert arr.size == numel, f"{name}: {arr.size} elements for shape {shape}"
        t = torch.from_numpy(arr.astype(ndt.newbyteorder("="), copy=False)).reshape(shape)
        if info["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    return out, meta


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    _, ndt = _DT[_FROM_TORCH[t.dtype]]
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # same bytes; numpy cannot hold bf16
    return t.numpy().astype(ndt, copy=False).tobytes()


def save(path, tensors, metadata=None):
    """Writes {name: tensor} (dtypes float32/float16/bfloat16/int64/int32) in name order,
    with optional {str: str} metadata. The header is space-padded to a multiple of 8."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _FROM_TORCH:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        b = _tensor_bytes(t)
        header[name] = {"dtype": _FROM_TORCH[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":  # self-check: round trip of every dtype
    import os
    import sys
    import tempfile
    p = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    ts = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(2, 3).bfloat16(),
          "i64": torch.arange(6).reshape(2, 3), "i32": torch.arange(4, dtype=torch.int32),
          "scalar": torch.tensor(2.5)}
    save(p, ts, {"format": "pt"})
    back, meta = load_with_metadata(p)
    assert meta == {"format": "pt"}, meta
    for k, v in ts.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    print("safetensors_py: round trip ok")
    sys.exit(0)
