"""Edits of real abmlora checkpoints through the system's libhdf5 (ctypes, standard library
only): what a damaged or hand-made file can hold that byte flips rarely produce, e.g. a
dataset whose dims multiply past int64 or an attribute that is valid HDF5 but nonsense.

Attribute edits can re-seal the group's `attrs_xxh64` (checkpoints/h5_io.cpp: XXH64 over
name + NUL + raw bytes of every other attribute, in name order), so that the reader gets
past its checksum to the value itself.
"""
import ctypes
import ctypes.util
import struct

_lib = None

H5P_DEFAULT = 0
H5E_DEFAULT = 0
H5F_ACC_RDWR = 1
H5S_SCALAR = 0
H5_INDEX_NAME = 0
H5_ITER_INC = 0

hid_t = ctypes.c_int64
hsize_t = ctypes.c_uint64


def lib():
    global _lib
    if _lib is not None:
        return _lib
    names = ["libhdf5_serial.so.103", "libhdf5_serial.so", "libhdf5.so.103", "libhdf5.so"]
    found = ctypes.util.find_library("hdf5_serial") or ctypes.util.find_library("hdf5")
    if found:
        names.insert(0, found)
    last = None
    for n in names:
        try:
            L = ctypes.CDLL(n)
            break
        except OSError as e:
            last = e
    else:
        raise RuntimeError("libhdf5 not found: %s" % last)
    for name, res, args in [
        ("H5open", ctypes.c_int, []),
        ("H5Eset_auto2", ctypes.c_int, [hid_t, ctypes.c_void_p, ctypes.c_void_p]),
        ("H5Fopen", hid_t, [ctypes.c_char_p, ctypes.c_uint, hid_t]),
        ("H5Fclose", ctypes.c_int, [hid_t]),
        ("H5Oopen", hid_t, [hid_t, ctypes.c_char_p, hid_t]),
        ("H5Oclose", ctypes.c_int, [hid_t]),
        ("H5Dopen2", hid_t, [hid_t, ctypes.c_char_p, hid_t]),
        ("H5Dclose", ctypes.c_int, [hid_t]),
        ("H5Dget_type", hid_t, [hid_t]),
        ("H5Dcreate2", hid_t, [hid_t, ctypes.c_char_p, hid_t, hid_t, hid_t, hid_t, hid_t]),
        ("H5Ldelete", ctypes.c_int, [hid_t, ctypes.c_char_p, hid_t]),
        ("H5Screate_simple", hid_t, [ctypes.c_int, ctypes.POINTER(hsize_t), ctypes.c_void_p]),
        ("H5Screate", hid_t, [ctypes.c_int]),
        ("H5Sclose", ctypes.c_int, [hid_t]),
        ("H5Sget_simple_extent_npoints", ctypes.c_int64, [hid_t]),
        ("H5Tcopy", hid_t, [hid_t]),
        ("H5Tset_size", ctypes.c_int, [hid_t, ctypes.c_size_t]),
        ("H5Tget_size", ctypes.c_size_t, [hid_t]),
        ("H5Tclose", ctypes.c_int, [hid_t]),
        ("H5Aopen", hid_t, [hid_t, ctypes.c_char_p, hid_t]),
        ("H5Aclose", ctypes.c_int, [hid_t]),
        ("H5Aget_type", hid_t, [hid_t]),
        ("H5Aget_space", hid_t, [hid_t]),
        ("H5Aread", ctypes.c_int, [hid_t, hid_t, ctypes.c_void_p]),
        ("H5Awrite", ctypes.c_int, [hid_t, hid_t, ctypes.c_void_p]),
        ("H5Acreate2", hid_t, [hid_t, ctypes.c_char_p, hid_t, hid_t, hid_t, hid_t]),
        ("H5Adelete", ctypes.c_int, [hid_t, ctypes.c_char_p]),
        ("H5Aget_name_by_idx", ctypes.c_ssize_t,
         [hid_t, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, hsize_t, ctypes.c_char_p,
          ctypes.c_size_t, hid_t]),
    ]:
        f = getattr(L, name)
        f.restype = res
        f.argtypes = args
    if L.H5open() < 0:
        raise RuntimeError("H5open failed")
    L.H5Eset_auto2(H5E_DEFAULT, None, None)  # no HDF5 error stacks on our stderr
    _lib = L
    return L


def _ok(v, what):
    if v < 0:
        raise RuntimeError("HDF5: %s failed" % what)
    return v


def _global(name):
    return hid_t.in_dll(lib(), name).value


# ---- XXH64 (same as checkpoints/xxh64.cpp) ---------------------------------------------
_M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, v):
    return (_rotl((acc + v * P2) & _M, 31) * P1) & _M


def _merge(h, v):
    return (((h ^ _round(0, v)) * P1) + P4) & _M


def xxh64(data, seed=0):
    n = len(data)
    p = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + P1 + P2) & _M, (seed + P2) & _M, seed, (seed - P1) & _M
        while p + 32 <= n:
            a, b, c, d = struct.unpack_from("<4Q", data, p)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            p += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + P5) & _M
    h = (h + n) & _M
    while p + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, p)
        h = (_rotl(h ^ _round(0, k), 27) * P1 + P4) & _M
        p += 8
    if p + 4 <= n:
        (k,) = struct.unpack_from("<I", data, p)
        h = (_rotl(h ^ ((k * P1) & _M), 23) * P2 + P3) & _M
        p += 4
    while p < n:
        h = (_rotl(h ^ ((data[p] * P5) & _M), 11) * P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * P2) & _M
    h ^= h >> 29
    h = (h * P3) & _M
    h ^= h >> 32
    return h


# ---- file-level helpers -----------------------------------------------------------------
class File:
    def __init__(self, path):
        self.L = lib()
        self.L.H5Eset_auto2(H5E_DEFAULT, None, None)  # per thread in thread-safe builds
        self.id = _ok(self.L.H5Fopen(path.encode(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen " + path)

    def close(self):
        self.L.H5Fclose(self.id)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def obj(self, path):
        return _ok(self.L.H5Oopen(self.id, path.encode(), H5P_DEFAULT), "H5Oopen " + path)

    def attr_names(self, obj):
        names = []
        buf = ctypes.create_string_buffer(4096)
        i = 0
        while True:
            n = self.L.H5Aget_name_by_idx(obj, b".", H5_INDEX_NAME, H5_ITER_INC, i, buf, 4096,
                                          H5P_DEFAULT)
            if n < 0:
                break
            names.append(buf.value.decode())
            i += 1
        return names

    def attr_raw(self, obj, name):
        """(raw bytes in the file type, type id copy, space id) of an attribute."""
        L = self.L
        a = _ok(L.H5Aopen(obj, name.encode(), H5P_DEFAULT), "H5Aopen " + name)
        t = L.H5Aget_type(a)
        s = L.H5Aget_space(a)
        n = L.H5Sget_simple_extent_npoints(s) * L.H5Tget_size(t)
        buf = ctypes.create_string_buffer(max(n, 1))
        _ok(L.H5Aread(a, t, buf), "H5Aread " + name)
        L.H5Aclose(a)
        return buf.raw[:n], t, s

    def write_attr_raw(self, obj, name, raw):
        """Overwrites an attribute's value with raw bytes of its own file type and size."""
        L = self.L
        a = _ok(L.H5Aopen(obj, name.encode(), H5P_DEFAULT), "H5Aopen " + name)
        t = L.H5Aget_type(a)
        size = L.H5Tget_size(t)
        assert len(raw) == size, (name, len(raw), size)
        _ok(L.H5Awrite(a, t, ctypes.create_string_buffer(raw, size)), "H5Awrite " + name)
        L.H5Tclose(t)
        L.H5Aclose(a)

    def set_str_attr(self, obj, name, value):
        """Replaces an attribute by a fixed-length NUL-terminated string (as put_attr)."""
        L = self.L
        L.H5Adelete(obj, name.encode())
        t = _ok(L.H5Tcopy(_global("H5T_C_S1_g")), "H5Tcopy")
        data = value.encode() if isinstance(value, str) else value
        _ok(L.H5Tset_size(t, len(data) + 1), "H5Tset_size")
        s = L.H5Screate(H5S_SCALAR)
        a = _ok(L.H5Acreate2(obj, name.encode(), t, s, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2")
        _ok(L.H5Awrite(a, t, ctypes.create_string_buffer(data, len(data) + 1)), "H5Awrite")
        L.H5Aclose(a)
        L.H5Sclose(s)
        L.H5Tclose(t)

    def reseal(self, obj):
        """Recomputes attrs_xxh64 of `obj` the way the writer does."""
        h = 0
        for name in sorted(self.attr_names(obj), key=lambda s: s.encode()):
            if name == "attrs_xxh64":
                continue
            raw, t, s = self.attr_raw(obj, name)
            self.L.H5Tclose(t)
            self.L.H5Sclose(s)
            h = xxh64(name.encode() + b"\0", h)
            h = xxh64(raw, h)
        self.write_attr_raw(obj, "attrs_xxh64", struct.pack("<Q", h))

    def redim_dataset(self, path, dims):
        """Replaces dataset `path` by an empty one of the same type and attributes (dtype,
        xxh64) but the given dims. HDF5 counts elements in uint64, so dims like 256^8 wrap
        around to 0 elements there and the file stays small."""
        L = self.L
        ds = _ok(L.H5Dopen2(self.id, path.encode(), H5P_DEFAULT), "H5Dopen2 " + path)
        t = L.H5Dget_type(ds)
        attrs = [(n,) + self.attr_raw(ds, n) for n in self.attr_names(ds)]
        L.H5Dclose(ds)
        _ok(L.H5Ldelete(self.id, path.encode(), H5P_DEFAULT), "H5Ldelete " + path)
        arr = (hsize_t * len(dims))(*dims)
        s = _ok(L.H5Screate_simple(len(dims), arr, None), "H5Screate_simple")
        nd = _ok(L.H5Dcreate2(self.id, path.encode(), t, s, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT), "H5Dcreate2 " + path)
        for name, raw, at, asp in attrs:
            a = _ok(L.H5Acreate2(nd, name.encode(), at, asp, H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2 " + name)
            _ok(L.H5Awrite(a, at, ctypes.create_string_buffer(raw, max(len(raw), 1))),
                "H5Awrite " + name)
            L.H5Aclose(a)
            L.H5Tclose(at)
            L.H5Sclose(asp)
        L.H5Dclose(nd)
        L.H5Sclose(s)
        L.H5Tclose(t)


def set_i64_attr(path, obj_path, name, value, reseal=True):
    with File(path) as f:
        o = f.obj(obj_path)
        f.write_attr_raw(o, name, struct.pack("<q", value))
        if reseal:
            f.reseal(o)
        f.L.H5Oclose(o)


def set_str_attr(path, obj_path, name, value, reseal=True):
    with File(path) as f:
        o = f.obj(obj_path)
        f.set_str_attr(o, name, value)
        if reseal:
            f.reseal(o)
        f.L.H5Oclose(o)


def redim(path, dataset, dims):
    with File(path) as f:
        f.redim_dataset(dataset, dims)


def dataset_names(path, group):
    """Children of a group, by name (for finding an adapter module)."""
    L = lib()
    f = File(path)
    try:
        g = f.obj(group)
        out = []
        buf = ctypes.create_string_buffer(4096)
        fn = L.H5Lget_name_by_idx
        fn.restype = ctypes.c_ssize_t
        fn.argtypes = [hid_t, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, hsize_t,
                       ctypes.c_char_p, ctypes.c_size_t, hid_t]
        i = 0
        while fn(g, b".", H5_INDEX_NAME, H5_ITER_INC, i, buf, 4096, H5P_DEFAULT) >= 0:
            out.append(buf.value.decode())
            i += 1
        L.H5Oclose(g)
        return out
    finally:
        f.close()
