"""Build-time: read a PyTorch checkpoint that pickles whole modules, without running its code.

Release checkpoints of YOLO detectors (MegaDetector's ``.pt`` files) and SpeciesNet's
classifier are ``torch.save`` of a dict holding an ``nn.Module`` *object*, so ``torch.load``
would import and instantiate the upstream classes (``models.yolo.DetectionModel``,
``ultralytics.nn.tasks.DetectionModel``, ...) - code sleuth does not ship and must not run.

:func:`load_checkpoint` unpickles with a :class:`pickle.Unpickler` whose ``find_class``
accepts only an explicit allow-list:

* module classes named in ``modules`` (upstream's and ``torch.nn``'s) become inert
  :class:`ModuleStub` records: their pickled ``__dict__`` (``_parameters``, ``_buffers``,
  ``_modules``, plain attributes such as ``yaml``, ``names``, ``stride``) is kept, nothing of
  theirs runs;
* tensors and parameters (``torch._utils._rebuild_*``), ``collections.OrderedDict``,
  ``builtins.set``, numpy scalars/arrays (``best_fitness``), and plain containers;
* anything else raises :class:`UnexpectedClassError` naming the refused ``module.name`` and
  the file.

:func:`state_dict` then walks the stub tree into a ``name -> tensor`` dict with the same
keys ``nn.Module.state_dict()`` would give, which our own network definitions load with
``strict=True``. torch is imported lazily (the ``convert`` extra); serving never imports this.
"""

from __future__ import annotations

import pickle
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "ModuleStub",
    "UnexpectedClassError",
    "iter_modules",
    "load_checkpoint",
    "state_dict",
]

#: torch.nn classes the YOLO / classifier checkpoints are made of (all become stubs).
TORCH_NN = (
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.SiLU",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.activation.Sigmoid",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.upsampling.Upsample",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.linear.Identity",
)


class CheckpointError(ValueError):
    """The checkpoint cannot be read as the expected release format."""


class UnexpectedClassError(CheckpointError):
    """The pickle names a class outside the allow-list."""

    def __init__(self, path: Path | str, qualname: str) -> None:
        self.path = str(path)
        self.qualname = qualname
        super().__init__(
            f"{path}: the checkpoint's pickle names class {qualname}, which is not one this converter "
            "expects; refusing to load it (nothing was imported or run)"
        )


class ModuleStub:
    """An unpickled module of an allowed class: its state, never its code."""

    qualname = "?"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.qualname}: unexpected pickled state {type(state).__name__}")
        self.__dict__.update(state)

    def child(self, name: str) -> ModuleStub:
        mods = self.__dict__.get("_modules") or {}
        if name not in mods:
            raise CheckpointError(f"{self.qualname} has no submodule {name!r}")
        return mods[name]

    @property
    def children(self) -> Mapping[str, ModuleStub]:
        return self.__dict__.get("_modules") or {}

    def __repr__(self) -> str:
        return f"<stub {self.qualname}>"


_stub_classes: dict[str, type[ModuleStub]] = {}


def _stub_for(qualname: str) -> type[ModuleStub]:
    cls = _stub_classes.get(qualname)
    if cls is None:
        cls = _stub_classes[qualname] = type(qualname.rsplit(".", 1)[-1], (ModuleStub,), {"qualname": qualname})
    return cls


def _as_str(*parts: Any) -> str:
    return "/".join(str(p) for p in parts)


def _allowed_functions() -> dict[str, Any]:
    import torch
    import torch._utils

    out: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.slice": slice,
        # protocol-2 pickles name the builtins module by its Python 2 name
        "__builtin__.set": set,
        "__builtin__.frozenset": frozenset,
        "__builtin__.slice": slice,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "types.SimpleNamespace": types.SimpleNamespace,
        # A pathlib path in the saved training options: kept as its text.
        "pathlib.PosixPath": _as_str,
        "pathlib.WindowsPath": _as_str,
        "pathlib.PurePosixPath": _as_str,
        "pathlib.PureWindowsPath": _as_str,
    }
    for dt in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "uint8", "bool"):
        out[f"torch.{dt}"] = getattr(torch, dt)
    for fn in ("_rebuild_parameter_with_state", "_rebuild_tensor"):
        if hasattr(torch._utils, fn):
            out[f"torch._utils.{fn}"] = getattr(torch._utils, fn)
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[f"{mod}.scalar"] = core.multiarray.scalar
        out[f"{mod}._reconstruct"] = core.multiarray._reconstruct
    out["numpy.dtype"] = np.dtype
    out["numpy.ndarray"] = np.ndarray
    return out


def _restricted_module(path: Path, modules: Iterable[str], extra: Mapping[str, Any] | None = None) -> types.ModuleType:
    stubs = set(modules) | set(TORCH_NN)
    functions = {**_allowed_functions(), **(extra or {})}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            qual = f"{module}.{name}"
            if qual in functions:
                return functions[qual]
            if qual in stubs:
                return _stub_for(qual)
            raise UnexpectedClassError(path, qual)

    mod = types.ModuleType("sleuth_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__name__ = "sleuth_restricted_pickle"
    return mod


def load_checkpoint(path: str | Path, modules: Iterable[str], functions: Mapping[str, Any] | None = None) -> Any:
    """Unpickle ``path`` (a ``torch.save`` file) accepting only ``modules`` (``pkg.mod.Class``) as classes.

    ``functions`` adds allowed globals (``pkg.mod.name`` -> the object the pickle gets instead), e.g. an
    inert stand-in for a reduce function that would run code (SpeciesNet's GraphModule).

    Raises :class:`UnexpectedClassError` naming a refused class, :class:`CheckpointError` for a
    file that is not a readable checkpoint (truncated, not a zip/pickle), both naming ``path``.
    """
    import torch

    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(
                p, map_location="cpu", weights_only=False, pickle_module=_restricted_module(p, modules, functions)
            )
    except UnexpectedClassError:
        raise
    except CheckpointError as e:
        raise CheckpointError(f"{p}: {e}") from e
    except Exception as e:  # zipfile / pickle / EOF errors: a damaged or foreign file
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e


def iter_modules(root: ModuleStub, prefix: str = "") -> Iterator[tuple[str, ModuleStub]]:
    """``(dotted name, stub)`` for ``root`` and every submodule, depth first (like ``named_modules``)."""
    yield prefix, root
    for name, sub in root.children.items():
        if sub is not None:
            yield from iter_modules(sub, f"{prefix}.{name}" if prefix else name)


def state_dict(root: ModuleStub) -> dict[str, Any]:
    """Parameters and persistent buffers of the stub tree, keyed as ``nn.Module.state_dict()``."""
    out: dict[str, Any] = {}
    for name, mod in iter_modules(root):
        pre = f"{name}." if name else ""
        for k, v in (mod.__dict__.get("_parameters") or {}).items():
            if v is not None:
                out[pre + k] = v.detach() if hasattr(v, "detach") else v
        skip = mod.__dict__.get("_non_persistent_buffers_set") or set()
        for k, v in (mod.__dict__.get("_buffers") or {}).items():
            if v is not None and k not in skip:
                out[pre + k] = v
    return out
