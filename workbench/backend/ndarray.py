"""Arrays on a device: ``wb.device("opencl")``, ``wb.nd.array(x, dev)``, ``.numpy()``.

A device array lives in the device's memory; a built GPU function takes it without
copying (it also takes numpy arrays, copying them in and out). ``"cpu"`` arrays hold
a numpy array. Each GPU backend registers how to allocate and copy on its devices
with :func:`register_device_api` when it is imported.

>>> import numpy as np
>>> import workbench as wb
>>> a = wb.nd.array(np.arange(4, dtype="float32"), wb.device("cpu"))
>>> a
<NDArray (4,) float32 on device('cpu', 0)>
>>> a.numpy().tolist()
[0.0, 1.0, 2.0, 3.0]
"""
from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from ..ir.dtype import DTypeError, from_numpy, to_numpy


class DeviceAPI(Protocol):
    """What a backend provides for its devices' memory."""

    def alloc(self, index: int, nbytes: int): ...

    def upload(self, index: int, handle, host: np.ndarray) -> None: ...

    def download(self, index: int, handle, host: np.ndarray) -> None: ...

    def describe(self, index: int) -> str: ...


class _CPU:
    def alloc(self, index: int, nbytes: int):
        return np.empty(nbytes, np.uint8)

    def upload(self, index: int, handle, host: np.ndarray) -> None:
        handle[:host.nbytes] = np.ascontiguousarray(host).reshape(-1).view(np.uint8)

    def download(self, index: int, handle, host: np.ndarray) -> None:
        host.reshape(-1).view(np.uint8)[:] = handle[:host.nbytes]

    def describe(self, index: int) -> str:
        return "the host CPU"


_APIS: dict[str, DeviceAPI] = {"cpu": _CPU()}
_ALIASES = {"llvm": "cpu", "gpu": "opencl", "cl": "opencl"}


def register_device_api(kind: str, api: DeviceAPI) -> None:
    """Make ``wb.device(kind)`` and device arrays of that kind use ``api``."""
    _APIS[kind] = api


class Device:
    """A device: its kind (``"cpu"``, ``"opencl"``, ``"cuda"``) and index among the devices of that kind."""

    def __init__(self, kind: str, index: int = 0):
        self.kind, self.index = kind, index

    @property
    def api(self) -> DeviceAPI:
        return _APIS[self.kind]

    def describe(self) -> str:
        return self.api.describe(self.index)

    def __repr__(self) -> str:
        return f"device({self.kind!r}, {self.index})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))


def device(kind: str = "cpu", index: int = 0) -> Device:
    """The device ``kind`` (``"cpu"``, ``"opencl"``, ``"cuda"``) number ``index``; imports its backend."""
    kind = _ALIASES.get(kind, kind)
    if kind not in _APIS:
        try:
            importlib.import_module(f"workbench.backend.{kind}")
        except ModuleNotFoundError as e:
            if e.name != f"workbench.backend.{kind}":
                raise
    if kind not in _APIS:
        raise ValueError(f"unknown device kind {kind!r}; known: {', '.join(sorted(_APIS))}")
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"device index must be a non-negative int, got {index!r}")
    dev = Device(kind, index)
    dev.describe()  # fails here, clearly, when the device does not exist
    return dev


class NDArray:
    """An array in a device's memory: ``shape``, ``dtype`` (a workbench dtype string), ``device``;
    ``numpy()`` copies it to the host."""

    def __init__(self, handle, shape: tuple, dtype: str, dev: Device):
        self.handle, self.shape, self.dtype, self.device = handle, tuple(shape), dtype, dev

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * to_numpy(self.dtype).itemsize

    def numpy(self) -> np.ndarray:
        """A new numpy array with the contents."""
        out = np.empty(self.shape, to_numpy(self.dtype))
        if out.nbytes:
            self.device.api.download(self.device.index, self.handle, out)
        return out

    def copyfrom(self, x) -> "NDArray":
        """Overwrite the contents with numpy array ``x`` (same shape and dtype); returns self."""
        x = np.asarray(x)
        _check_same(self, x)
        if x.nbytes:
            self.device.api.upload(self.device.index, self.handle, np.ascontiguousarray(x))
        return self

    def __repr__(self) -> str:
        return f"<NDArray {self.shape} {self.dtype} on {self.device!r}>"


def _check_same(a: NDArray, x: np.ndarray) -> None:
    if tuple(x.shape) != a.shape:
        raise ValueError(f"cannot copy an array of shape {x.shape} into a device array of shape {a.shape}")
    if _dtype_of(x) != a.dtype:
        raise TypeError(f"cannot copy an array of dtype {x.dtype} into a device array of dtype {a.dtype}")


def _dtype_of(x: np.ndarray) -> str:
    try:
        return from_numpy(x.dtype)
    except DTypeError:
        return str(x.dtype)


def _as_device(dev) -> Device:
    if dev is None:
        return device("cpu")
    if isinstance(dev, str):
        return device(dev)
    if not isinstance(dev, Device):
        raise TypeError(f"expected a device (wb.device(\"opencl\")), got {type(dev).__name__}")
    return dev


def empty(shape, dtype: str = "float32", dev=None) -> NDArray:
    """An uninitialised device array."""
    d = _as_device(dev)
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * to_numpy(dtype).itemsize
    return NDArray(d.api.alloc(d.index, max(nbytes, 1)), shape, from_numpy(to_numpy(dtype)), d)


def array(x, dev=None) -> NDArray:
    """A device array with a copy of ``x`` (a numpy array or anything ``np.asarray`` takes)."""
    if isinstance(x, NDArray):
        x = x.numpy()
    x = np.asarray(x)
    try:
        dtype = from_numpy(x.dtype)
    except DTypeError:
        raise TypeError(f"wb.nd.array: numpy dtype {x.dtype} has no workbench dtype") from None
    out = empty(x.shape, dtype, dev)
    return out.copyfrom(x)


__all__ = ["Device", "NDArray", "device", "array", "empty", "register_device_api", "DeviceAPI"]
