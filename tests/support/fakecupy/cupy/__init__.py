"""A strict NumPy-backed stand-in for the part of CuPy that cnnx uses (NOT CuPy).

Put on the import path only for the GPU run of the test suite
(``PYTHONPATH=tests/support/fakecupy``). It is as strict as CuPy where that
matters for finding device bugs without a GPU:

- :class:`ndarray` is its own type. ``numpy.asarray(device_array)`` raises
  TypeError, and so does mixing a device array with a ``numpy.ndarray`` (0-d
  included) in an operator, ufunc or NumPy function, in either order. NumPy
  scalars (``numpy.float32(2)``) and Python numbers mix freely, as in CuPy.
- Assigning a host array into a device array is refused; ``out=`` must be a
  device array.
- Reductions and scalar indexing give 0-d device arrays. ``float()``,
  ``int()``, ``bool()``, ``.item()``, ``.get()``, ``.tolist()``, ``repr`` and
  :func:`asnumpy` work and are counted as device→host synchronisations
  (``cupy_stand_in.syncs()``).
- Arrays live on a fake GPU (``.device``); ``CNNX_FAKE_GPUS=2`` gives two. An
  operation whose arrays live on a device other than the current one raises
  ValueError, as CuPy does without peer access. Views (reshape, transpose,
  basic slicing) are allowed anywhere, as in CuPy: they launch no kernel.
- Only names real CuPy has exist (``cupy_names.json``, generated from
  cupy-cuda12x by ``generate_names.py``); a real name the stand-in does not
  implement raises AttributeError saying so.

Differences from CuPy, kept on purpose: NumPy's arithmetic and promotion rules
(which CuPy follows); float warnings are silenced (CuPy never warns); a
``numpy.ndarray`` used as an index is accepted but counted as a host→device
copy (``cupy_stand_in.uploads()``).
"""

from __future__ import annotations

import builtins as _builtins

import cupy_stand_in as _state
import numpy as _np

from cupy import cuda

__version__ = _state.CUPY_VERSION

# dtypes and constants are NumPy's own objects in CuPy too (cupy.float32 is numpy.float32).
bool_ = _np.bool_
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint16, uint32, uint64 = _np.uint8, _np.uint16, _np.uint32, _np.uint64
float16, float32, float64 = _np.float16, _np.float32, _np.float64
intp = _np.intp
dtype = _np.dtype
newaxis = None
inf, nan, pi, e = _np.inf, _np.nan, _np.pi, _np.e

_HOST_MESSAGE = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


def _unsupported(value: object) -> TypeError:
    return TypeError(f"Unsupported type {type(value)}")


def _peer_error(array_device: int, current: int) -> ValueError:
    return ValueError(
        f"The device where the array resides ({array_device}) is different from the current "
        f"device ({current}). Peer access is unavailable between these devices."
    )


def _check(devices: list[int]) -> int:
    """Every array operand must live on the current device (a kernel runs there)."""
    current = _state.current_device()
    for d in devices:
        if d != current:
            raise _peer_error(d, current)
    return current


def _operand(x: object, devices: list[int]) -> object:
    """Unwrap one operand of an elementwise operation (CuPy's accepted types only)."""
    if isinstance(x, ndarray):
        devices.append(x._dev)
        return x._a
    if isinstance(x, _np.generic | bool | int | float | complex):
        return x
    raise _unsupported(x)


def _arg(x: object, devices: list[int]) -> object:
    """Unwrap a non-operand argument (axis, shape, dtype, ...); host arrays are refused."""
    if isinstance(x, ndarray):
        devices.append(x._dev)
        return x._a
    if isinstance(x, _np.ndarray):
        raise _unsupported(x)
    if isinstance(x, tuple | list):
        return type(x)(_arg(v, devices) for v in x)
    return x


def _out(out: object, devices: list[int]) -> object:
    if out is None:
        return None
    if isinstance(out, tuple) and len(out) == 1:
        out = out[0]
    if not isinstance(out, ndarray):
        raise TypeError(f"Output arrays must be cupy.ndarray, got {type(out)}")
    devices.append(out._dev)
    return out


def _make(a: _np.ndarray, dev: int) -> ndarray:
    obj = object.__new__(ndarray)
    obj._a = a
    obj._dev = dev
    return obj


def _wrap(r: object, dev: int) -> object:
    if isinstance(r, _np.ndarray):
        return _make(r, dev)
    if isinstance(r, _np.generic):
        return _make(_np.asarray(r), dev)
    if isinstance(r, tuple):
        return tuple(_wrap(v, dev) for v in r)
    return r


def _compute(func, args, kwargs, out=None):
    devices: list[int] = []
    values = [_operand(a, devices) for a in args]
    kw = {k: _arg(v, devices) for k, v in kwargs.items()}
    out = _out(out, devices)
    dev = _check(devices)
    with _np.errstate(all="ignore"):
        if out is not None:
            func(*values, out=out._a, **kw)
            return out
        return _wrap(func(*values, **kw), dev)


def _elementwise(name: str):
    func = getattr(_np, name)

    def ufunc(*args, out=None, **kwargs):
        return _compute(func, args, kwargs, out)

    ufunc.__name__ = name
    ufunc.__doc__ = f"cupy.{name} (stand-in: numpy.{name} on the current fake GPU)"
    return ufunc


_UFUNCS = (
    "add subtract multiply divide true_divide floor_divide power negative absolute abs "
    "maximum minimum greater greater_equal less less_equal equal not_equal logical_and "
    "logical_or logical_not sqrt exp log log1p expm1 tanh sign square isfinite isnan isinf "
    "where clip matmul dot"
).split()
for _name in _UFUNCS:
    globals()[_name] = _elementwise(_name)


def _reduction(name: str):
    def reduce(a, *args, out=None, **kwargs):
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        return getattr(a, name)(*args, out=out, **kwargs)

    reduce.__name__ = name
    return reduce


for _name in "sum mean var std max min argmax argmin any all".split():
    globals()[_name] = _reduction(_name)
amax, amin = globals()["max"], globals()["min"]


def _dtype_default(dtype):
    return float if dtype is None else dtype


def empty(shape, dtype=float, order="C"):
    return _make(_np.empty(shape, dtype=dtype, order=order), _state.current_device())


def zeros(shape, dtype=float, order="C"):
    return _make(_np.zeros(shape, dtype=dtype, order=order), _state.current_device())


def ones(shape, dtype=float, order="C"):
    return _make(_np.ones(shape, dtype=dtype, order=order), _state.current_device())


def full(shape, fill_value, dtype=None, order="C"):
    fill = fill_value
    if isinstance(fill_value, ndarray):
        _check([fill_value._dev])
        fill = fill_value._a
    elif isinstance(fill_value, _np.ndarray):
        raise _unsupported(fill_value)
    return _make(_np.full(shape, fill, dtype=dtype, order=order), _state.current_device())


def _like(maker):
    def like(a, dtype=None, order="K", subok=None, shape=None):
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        # CuPy allocates the result on the *current* device, not on a's.
        return _make(maker(a._a, dtype=dtype, order=order, shape=shape), _state.current_device())

    like.__name__ = maker.__name__
    return like


empty_like = _like(_np.empty_like)
zeros_like = _like(_np.zeros_like)
ones_like = _like(_np.ones_like)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    out = _np.full_like(a._a, fill_value, dtype=dtype, order=order, shape=shape)
    return _make(out, _state.current_device())


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    return _make(_np.arange(start, stop, step, dtype=dtype), _state.current_device())


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """Host data is copied to the current device; a device array is copied (across devices too)."""
    current = _state.current_device()
    if isinstance(obj, ndarray):
        # Copies between devices are explicit memcpys in CuPy, so they are allowed.
        a = obj._a
        if copy or obj._dev != current or (dtype is not None and _np.dtype(dtype) != a.dtype):
            return _make(_np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin), current)
        return obj
    if isinstance(obj, list | tuple) and _builtins.any(isinstance(v, ndarray) for v in obj):
        raise TypeError("the stand-in does not build arrays from sequences of device arrays")
    _state.count_upload()
    return _make(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin), current)


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return array(a, dtype=dtype, copy=False, order="K" if order is None else order)
    return array(a, dtype=dtype, copy=True, order="K" if order is None else order)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    _check([a._dev])
    return _make(_np.ascontiguousarray(a._a, dtype=dtype), a._dev)


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Copy a device array to the host (one counted synchronisation); host input passes through."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    import sys

    for a in args:
        if isinstance(a, ndarray):
            return sys.modules[__name__]
    return _np


def _join(func):
    def join(arrays, axis=0, out=None, dtype=None):
        devices: list[int] = []
        values = [_operand(a, devices) for a in arrays]
        out = _out(out, devices)
        dev = _check(devices)
        if out is not None:
            func(values, axis=axis, out=out._a, dtype=dtype)
            return out
        return _make(func(values, axis=axis, dtype=dtype), dev)

    join.__name__ = func.__name__
    return join


concatenate = _join(_np.concatenate)
stack = _join(_np.stack)


def packbits(a, axis=None, bitorder="big"):
    return _compute(_np.packbits, (a,), {"axis": axis, "bitorder": bitorder})


def unpackbits(a, axis=None, bitorder="big"):
    return _compute(_np.unpackbits, (a,), {"axis": axis, "bitorder": bitorder})


def _view_method(name: str):
    """Methods that only make a view (no kernel): allowed on any device, as in CuPy."""

    def method(self, *args, **kwargs):
        devices: list[int] = []
        args = _arg(args, devices)
        kwargs = {k: _arg(v, devices) for k, v in kwargs.items()}
        return _wrap(getattr(self._a, name)(*args, **kwargs), self._dev)

    method.__name__ = name
    return method


def _kernel_method(name: str):
    """Methods that run a kernel: every array must be on the current device."""

    def method(self, *args, out=None, **kwargs):
        devices = [self._dev]
        args = _arg(args, devices)
        kwargs = {k: _arg(v, devices) for k, v in kwargs.items()}
        out = _out(out, devices)
        dev = _check(devices)
        with _np.errstate(all="ignore"):
            if out is not None:
                getattr(self._a, name)(*args, out=out._a, **kwargs)
                return out
            return _wrap(getattr(self._a, name)(*args, **kwargs), dev)

    method.__name__ = name
    return method


def _binary(func, reflected: bool = False):
    def op(self, other):
        if isinstance(other, _np.ndarray):
            raise _unsupported(other)
        if not isinstance(other, ndarray | _np.generic | bool | int | float | complex):
            return NotImplemented
        return _compute(func, (other, self) if reflected else (self, other), {})

    return op


def _inplace(func):
    def op(self, other):
        return _compute(func, (self, other), {}, out=self)

    return op


def _unary(func):
    def op(self):
        return _compute(func, (self,), {})

    return op


def _index(key: object, devices: list[int]) -> tuple[object, bool]:
    """Unwrap an index; returns ``(key, advanced)``."""
    if isinstance(key, ndarray):
        devices.append(key._dev)
        return key._a, True
    if isinstance(key, _np.ndarray):
        _state.count_upload()  # CuPy copies a host index array to the device first
        return key, True
    if isinstance(key, list):
        _state.count_upload()
        return key, True
    if isinstance(key, tuple):
        parts = [_index(k, devices) for k in key]
        return tuple(p for p, _ in parts), _builtins.any(adv for _, adv in parts)
    return key, False


class ndarray:
    """A device array: a NumPy array that stays behind the device boundary."""

    __slots__ = ("_a", "_dev")
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise TypeError("the stand-in's ndarray() takes only shape, dtype and order")
        self._a = _np.empty(shape, dtype=dtype, order=order)
        self._dev = _state.current_device()

    # -- the device boundary --------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_HOST_MESSAGE)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for v in (*inputs, *kwargs.get("out", ())):
            if isinstance(v, _np.ndarray):
                raise _unsupported(v)
        if method != "__call__" or ufunc.__name__ not in _UFUNCS:
            return NotImplemented
        return globals()[ufunc.__name__](*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        for t in types:
            if issubclass(t, _np.ndarray):
                raise TypeError(f"Unsupported type {t}")
        mine = globals().get(func.__name__)
        if mine is None or not callable(mine):
            return NotImplemented
        return mine(*args, **kwargs)

    @property
    def device(self) -> cuda.Device:
        return cuda.Device(self._dev)

    def get(self, stream=None, order="C", out=None, blocking=True):
        """Copy to the host: one counted device→host synchronisation."""
        _state.count_sync()
        if out is not None:
            if not isinstance(out, _np.ndarray):
                raise TypeError("out must be a numpy.ndarray")
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy host data into this array (explicit host→device copy)."""
        if not isinstance(arr, _np.ndarray) or arr.shape != self.shape:
            raise ValueError("set() needs a numpy.ndarray of the same shape")
        _state.count_upload()
        self._a[...] = arr

    def item(self):
        _state.count_sync()
        return self._a.item()

    def tolist(self):
        _state.count_sync()
        return self._a.tolist()

    def __float__(self):
        _state.count_sync()
        return float(self._a)

    def __int__(self):
        _state.count_sync()
        return int(self._a)

    def __complex__(self):
        _state.count_sync()
        return complex(self._a)

    def __bool__(self):
        _state.count_sync()
        return bool(self._a)

    def __repr__(self):
        _state.count_sync()
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        _state.count_sync()
        return str(self._a)

    def __format__(self, spec):
        _state.count_sync()
        return format(self._a if self._a.ndim else self._a.item(), spec)

    def __reduce__(self):
        return (_rebuild, (self.get(), self._dev))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        with cuda.Device(self._dev):
            return self.copy()

    # -- attributes -------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _make(self._a.T, self._dev))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    def __getitem__(self, key):
        devices = [self._dev]
        key, advanced = _index(key, devices)
        if advanced:
            _check(devices)
        return _wrap(self._a[key], self._dev)

    def __setitem__(self, key, value):
        devices = [self._dev]
        key, _ = _index(key, devices)
        if isinstance(value, _np.ndarray):
            raise TypeError(
                "cannot assign a numpy.ndarray into a cupy.ndarray (an implicit host→device "
                "copy); move it with cupy.asarray first"
            )
        value = _operand(value, devices) if not isinstance(value, list | tuple) else value
        _check(devices)
        self._a[key] = value

    def __getattr__(self, name):
        if name in _state.real_names("cupy.ndarray"):
            raise AttributeError(
                f"stand-in: cupy.ndarray.{name} exists in CuPy but is not "
                "implemented by tests/support/fakecupy"
            )
        raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")

    for _name in ("reshape", "transpose", "view", "swapaxes", "squeeze", "ravel", "diagonal"):
        locals()[_name] = _view_method(_name)
    for _name in (
        "sum mean var std max min argmax argmin any all prod cumsum clip copy astype fill "
        "dot take repeat round nonzero flatten"
    ).split():
        locals()[_name] = _kernel_method(_name)
    del _name

    __add__, __radd__ = _binary(_np.add), _binary(_np.add, True)
    __sub__, __rsub__ = _binary(_np.subtract), _binary(_np.subtract, True)
    __mul__, __rmul__ = _binary(_np.multiply), _binary(_np.multiply, True)
    __truediv__, __rtruediv__ = _binary(_np.true_divide), _binary(_np.true_divide, True)
    __floordiv__, __rfloordiv__ = _binary(_np.floor_divide), _binary(_np.floor_divide, True)
    __mod__, __rmod__ = _binary(_np.remainder), _binary(_np.remainder, True)
    __pow__, __rpow__ = _binary(_np.power), _binary(_np.power, True)
    __matmul__, __rmatmul__ = _binary(_np.matmul), _binary(_np.matmul, True)
    __and__, __rand__ = _binary(_np.bitwise_and), _binary(_np.bitwise_and, True)
    __or__, __ror__ = _binary(_np.bitwise_or), _binary(_np.bitwise_or, True)
    __xor__, __rxor__ = _binary(_np.bitwise_xor), _binary(_np.bitwise_xor, True)
    __eq__, __ne__ = _binary(_np.equal), _binary(_np.not_equal)
    __lt__, __le__ = _binary(_np.less), _binary(_np.less_equal)
    __gt__, __ge__ = _binary(_np.greater), _binary(_np.greater_equal)
    __iadd__, __isub__ = _inplace(_np.add), _inplace(_np.subtract)
    __imul__, __itruediv__ = _inplace(_np.multiply), _inplace(_np.true_divide)
    __ipow__, __ifloordiv__ = _inplace(_np.power), _inplace(_np.floor_divide)
    __iand__, __ior__, __ixor__ = (
        _inplace(_np.bitwise_and),
        _inplace(_np.bitwise_or),
        _inplace(_np.bitwise_xor),
    )
    __neg__, __pos__, __abs__ = _unary(_np.negative), _unary(_np.positive), _unary(_np.absolute)
    __invert__ = _unary(_np.invert)


def _rebuild(host: _np.ndarray, dev: int) -> ndarray:
    return _make(host, dev)


def __getattr__(name: str):
    if name in _state.real_names("cupy"):
        raise AttributeError(
            f"stand-in: cupy.{name} exists in CuPy but is not implemented by "
            "tests/support/fakecupy; implement it there (strictly) if cnnx needs it"
        )
    raise AttributeError(f"module 'cupy' has no attribute {name!r}")
