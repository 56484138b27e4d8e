"""Weights files people share, read as tensors only: ``.pth`` / ``.pt`` / ``.ckpt`` state dicts
through ``torch.load(weights_only=True)`` and ``.safetensors`` files; never pickled code, never a
TorchScript archive (which holds code). ``translate import`` and ``model.init_from`` read them here.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from translate.errors import TranslateError

# Keys a checkpoint may hold its state dict under (reference-style trainers and their forks).
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "netG", "net_G", "generator", "G",
                "params_ema", "params-ema", "params", "net")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding code), not a plain state dict."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _torch_file(path: Path) -> Any:
    """What ``torch.load(weights_only=True)`` reads from ``path``, or a one-line error."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise TranslateError(f"{path}: the file is empty")
    # torch.save writes a zip archive (PyTorch >= 1.6) or, before that, a pickle stream (which
    # opens with the PROTO opcode 0x80). torch.load's own messages for other bytes mislead
    # (a text file: "KeyError: 101"; zeros: "legacy .tar format"), so say it plainly.
    if head != b"PK\x03\x04" and head[0] != 0x80:
        raise TranslateError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip "
                             f"archive nor a pickle; it starts with {head!r})")
    if head == b"PK\x03\x04" and _torchscript(path):
        raise TranslateError(f"{path}: a TorchScript archive, which holds code; translate never "
                             "runs code from a model file: save the model's state_dict() "
                             "(or a .safetensors file) and import that")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — torch.load raises many types; all mean "unreadable"
        text = str(e)
        if "Weights only load failed" in text:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f" (it refers to {found.group(1)})" if found else ""
            raise TranslateError(f"{path}: not loadable with torch.load(weights_only=True){what}; "
                                 "only plain state dicts are imported, never pickled code"
                                 ) from None
        raise TranslateError(f"{path}: torch.load cannot read it: {type(e).__name__}: "
                             f"{_first_line(text)}") from None


def _safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise TranslateError(f"{path}: not a readable safetensors file: {_first_line(str(e))}"
                             ) from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The plain-tensor state dict in ``path`` (``module.`` / ``netG.`` prefixes stripped).

    ``.safetensors`` files are read by safetensors; anything else (``.pth``, ``.pt``, ``.ckpt``,
    ``.bin``) by ``torch.load(weights_only=True)``, TorchScript archives refused (they hold code).

    Raises:
        TranslateError: not a regular file, empty, not a ``torch.save`` or safetensors file, not
            loadable with ``weights_only=True``, not a dict of tensors (directly or under one of
            :data:`WRAPPER_KEYS`), or holding NaN or infinite values.
    """
    if path.is_dir():
        raise TranslateError(f"{path} is a folder; import takes a weights file (.pth, .pt, "
                             ".ckpt or .safetensors)")
    if not path.exists():
        raise TranslateError(f"{path}: no such file")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
        raise TranslateError(f"{path} is not a regular file")
    try:
        raw = (_safetensors_file(path) if path.suffix.lower() == ".safetensors"
               else _torch_file(path))
    except OSError as e:  # permissions, I/O errors
        raise TranslateError(f"cannot read {path}: {e.strerror or e}") from None
    state = _unwrap(raw, path)
    for prefix in ("module.", "netG."):  # saved from DataParallel / DDP, or BasicSR's netG
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    for key, t in state.items():
        if not t.is_floating_point():
            continue
        if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TranslateError(f"{path}: {key} holds {t.dtype} values; translate reads "
                                 "float16, bfloat16, float32 and float64 weights")
        if not torch.isfinite(t).all():
            raise TranslateError(f"{path}: {key} holds NaN or infinite values")
    return state


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict) and len(obj) == 1 and _is_state_dict(next(iter(obj.values()))):
        return dict(next(iter(obj.values())))  # one key of any name holding it (as spandrel)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
        keys = ", ".join(map(repr, list(obj)[:6])) + (" …" if len(obj) > 6 else "")
        raise TranslateError(f"{path}: not a state dict (a dict of tensors, or one under "
                             f"{'/'.join(WRAPPER_KEYS)}); its keys: {keys or 'none'}")
    raise TranslateError(f"{path}: not a state dict: it holds a {type(obj).__name__}")
