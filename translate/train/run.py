"""A training run's folder: one writer at a time, the start and resume checks, and its files.

```
runs/NAME/
  .lock               held (flock) by the one process training into the folder; holds its PID
  config.yaml         the resolved config (rewritten when a resume changes a key)
  state/last.pt       the checkpoint (translate.train.checkpoint)
  model.safetensors   + model.json: the inference weights, written with every checkpoint
  samples/            step_*.png grids
  metrics.jsonl       one JSON record per logged step (and one per resume that changed keys)
  tensorboard/        with --tensorboard
```

:class:`RunFolder` owns the folder's life (lock, checks, creation, removal of a run that failed
before its first checkpoint) and writes its files; :class:`MetricsLog` turns each step's losses
into the logged records. Every write goes through :func:`translate.io.oserrors.writing`, so a
full disk or a read-only folder ends the run with one line naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch

from translate import console as ui
from translate.config import to_yaml
from translate.errors import TranslateError
from translate.io.atomic import atomic_open, atomic_write_text, remove_stale_temp_files
from translate.io.oserrors import writing
from translate.io.paths import display
from translate.modelfile import save_model
from translate.train.board import Board
from translate.train.checkpoint import save_checkpoint

try:
    import fcntl
except ImportError:  # not POSIX: no lock (the rest works)
    fcntl = None

LOCK_NAME = ".lock"


class RunFolder:
    """The folder of one training run, its files, and the lock that keeps a second writer out.

    Args:
        path: the run folder (``--out``).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.checkpoint = self.path / "state" / "last.pt"
        self.metrics = self.path / "metrics.jsonl"
        self.samples = self.path / "samples"
        self.lock_file = self.path / LOCK_NAME
        self.created = False  # this process made the folder
        self.saved = False  # the folder holds a checkpoint (an earlier run's or this one's)
        self._lock_fd: int | None = None
        self._dir_fd: int | None = None  # the folder itself, flocked: see lock()

    # ── Life: lock, checks, creation, clean-up.

    @contextlib.contextmanager
    def open(self, config: Any, resume: bool) -> Iterator[RunFolder]:
        """Lock the folder for this process, remove temp files a killed run left, and check it:
        a resume needs a checkpoint; a new run needs a folder without one (a run that stopped
        before its first checkpoint is started over). A new run's folders and config.yaml are
        written here.

        On leaving, the lock is released; if the block failed before any checkpoint was saved
        in a folder this call created, the folder is removed.

        Raises:
            TranslateError: another process holds the lock (its PID is named), the folder cannot
                be written (the cause is named), or it does not suit a new run or a resume.
        """
        self._make()
        try:
            self.lock()
            remove_stale_temp_files(self.path)
            if resume:
                self._check_resumable()
                self.saved = True
            else:
                self._start(config)
            yield self
        except BaseException:
            if self.created and self._lock_fd is not None and not self.saved:
                self.unlock()
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        finally:
            self.unlock()

    def _make(self) -> None:
        existing = next((p for p in (self.path, *self.path.parents) if p.exists()), None)
        if existing == self.path:
            if not self.path.is_dir():
                raise TranslateError(f"{display(self.path)} is a file, not a folder: choose "
                                     "another --out for the run")
            return
        if existing is not None and not existing.is_dir():
            raise TranslateError(f"cannot create the run folder {display(self.path)}: "
                                 f"{display(existing)} is a file, not a folder")
        with writing(self.path, "create the run folder"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.path.mkdir()
                self.created = True
            except FileExistsError:
                if not self.path.is_dir():
                    raise
                self.created = False

    def lock(self) -> None:
        """Take the folder's lock (``flock`` on the run folder itself and on ``.lock``, both
        released by the kernel when the process ends, SIGKILL included) and write this
        process's PID into ``.lock``. Deleting ``.lock`` lets no second run in: the folder's own
        lock is checked first.

        Raises:
            TranslateError: another process holds it (named by the PID it wrote), or the
                folder cannot be written.
        """
        if fcntl is None or self._lock_fd is not None:
            return
        self._lock_folder()
        try:
            self._lock_file()
        except BaseException:
            self._unlock_folder()
            raise

    def _refuse(self, holder: str) -> NoReturn:
        who = f"PID {holder}" if holder.isdigit() else "another process"
        raise TranslateError(
            f"{display(self.path)} is in use by another training run ({who}): wait "
            "for it to end, or stop it, before training into this folder") from None

    def _lock_folder(self) -> None:
        """``flock`` the run folder itself. ``.lock`` can be deleted while a run holds it (a
        clean-up script, a user), and a second run would then lock a new file; the folder
        cannot be deleted away while the run writes in it, so every run checks this lock,
        whatever happened to ``.lock``."""
        with writing(self.path, "lock"):
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._refuse(self._holder())
        except BaseException:
            os.close(fd)
            raise
        self._dir_fd = fd

    def _holder(self) -> str:
        """The PID ``.lock`` names ("" when it is gone or not a plain file)."""
        try:
            if not stat.S_ISREG(os.stat(self.lock_file).st_mode):
                return ""
            return self.lock_file.read_bytes()[:32].decode("ascii", "replace").strip()
        except OSError:
            return ""

    def _unlock_folder(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def _lock_file(self) -> None:
        """``flock`` ``.lock`` and write this process's PID into it (named to a second run)."""
        while True:
            with writing(self.lock_file):
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    os.close(fd)
                    self._refuse(holder)
                except BaseException:
                    os.close(fd)
                    raise
            # The holder before us removes the file when it ends: if it did so between our open
            # and our flock, we hold a lock on a file no one else will open. Try again.
            try:
                same = os.stat(self.lock_file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            with writing(self.lock_file):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock and remove ``.lock`` (a crash leaves the file; the next lock reuses
        it)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_file)  # while still holding it: see lock()
        os.close(self._lock_fd)
        self._lock_fd = None
        self._unlock_folder()

    def _check_resumable(self) -> None:
        if not self.checkpoint.is_file():
            raise TranslateError(
                f"{display(self.path)} has no checkpoint (state/last.pt) to resume from: the run "
                "stopped before its first one. Train again without --resume to start it over "
                "(or delete the folder)")

    def _start(self, config: Any) -> None:
        if self.checkpoint.is_file() or (self.path / "model.safetensors").is_file():
            raise TranslateError(f"{display(self.path)} already holds a run: add --resume to "
                                 "continue it, or choose another --out")
        if self.config.exists() or (self.path / "state").exists():
            ui.info(f"{display(self.path)} holds a run that stopped before its first checkpoint: "
                    "starting it over (its metrics, samples and TensorBoard events go)")
            self._remove_outputs()
        with writing(self.path):
            (self.path / "state").mkdir(exist_ok=True)
            self.samples.mkdir(exist_ok=True)
            atomic_write_text(self.config, to_yaml(config))

    def _remove_outputs(self) -> None:
        """What a run writes besides config.yaml and its checkpoint: a run started over would
        otherwise mix its records and grids with the dead one's."""
        doomed = [self.metrics, self.path / "world.json", *self.samples.glob("step_*.png"),
                  *(self.path / "tensorboard").glob("events.out.tfevents.*")]
        with writing(self.path, "start over in"):
            for path in doomed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    # ── Files.

    def save(self, state: dict[str, Any], task: Any) -> None:
        """Write the checkpoint ``state``, then ``task``'s model files (each atomically)."""
        kept = "the previous checkpoint is kept" if self.saved else ""
        with writing(self.checkpoint, note=kept):
            save_checkpoint(self.checkpoint, state)
        self.saved = True
        networks, meta = task.export()
        with writing(self.path, "write the model files in"):
            save_model(self.path, task.name, networks, meta)

    def save_sample(self, grid: torch.Tensor, step: int) -> None:
        from torchvision.utils import save_image

        path = self.samples / f"step_{step:07d}.png"
        with writing(path), atomic_open(path, "wb") as f:
            save_image(grid, f, format="png")

    def write_text(self, path: Path, text: str) -> None:
        with writing(path):
            atomic_write_text(path, text)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """One JSON line at the end of metrics.jsonl. A write that fails (a full disk) is cut
        back off, so the file never ends in a torn line that this process wrote."""
        data = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        with writing(self.metrics):
            # Unbuffered: a buffered file would retry the rest of a failed write when closed.
            fd = os.open(self.metrics, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o666)
            try:
                end = os.fstat(fd).st_size
                try:
                    while data:
                        data = data[os.write(fd, data):]
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)

    def trim_metrics(self, step: int) -> None:
        """After a resume, drop the records logged past the checkpoint's ``step`` (they will be
        logged again), and a record of changes made at ``step`` itself (a resume from this
        checkpoint that saved nothing; this resume records its own). A torn last line (an
        append cut off by a kill or a full disk) is dropped with a note; a line in the middle
        that is not a JSON record stops the resume.

        Raises:
            TranslateError: naming the line that is not a record.
        """
        if not self.metrics.is_file():
            return
        lines = self.metrics.read_text(encoding="utf-8", errors="replace").splitlines()
        numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
        kept = []
        for i, line in numbered:
            record = _record(line)
            if record is None:
                if i == numbered[-1][0]:
                    ui.info(f"{display(self.metrics)}: removed its last line (line {i}), cut "
                            "off by an interrupted write")
                    continue
                raise TranslateError(
                    f"{display(self.metrics)} line {i} is not a JSON record: repair or delete "
                    "that line, then resume")
            at = record.get("step", 0)
            if at < step or (at == step and "changed" not in record):
                kept.append(line)
        self.write_text(self.metrics, "".join(line + "\n" for line in kept))


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class MetricsLog:
    """The losses of each step, averaged over ``train.log_every`` steps into one record for
    metrics.jsonl (and TensorBoard), and shown beside the progress bar.

    A context manager: the bar shows (``show``) inside the block; the board closes after it.

    Args:
        run: the run folder (its metrics.jsonl).
        label: the bar's title.
        total: the run's length in steps.
        start: the step the run starts at (a resume's).
        show: show the progress bar.
        tensorboard: also log to ``RUN/tensorboard``.
    """

    def __init__(self, run: RunFolder, label: str, total: int, start: int, show: bool,
                 tensorboard: bool):
        self.run, self.show = run, show
        self.board: Board | None = None
        if tensorboard:
            with writing(run.path / "tensorboard"):
                self.board = Board(run.path)
        self.sums: dict[str, float] = {}
        self.count = 0  # steps with losses (a skipped step has none)
        self.started = time.perf_counter()
        self.interval_start, self.interval_steps = self.started, 0
        self.progress = ui.progress_bar()
        self.bar = self.progress.add_task(label, total=total, completed=start, rate="", info="")

    def __enter__(self) -> MetricsLog:
        if self.show:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.show:
            self.progress.stop()
        if self.board is not None:
            self.board.close()

    def add(self, losses: dict[str, float]) -> None:
        """One step's losses (``{}`` for a skipped step)."""
        self.interval_steps += 1
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += bool(losses)

    def write(self, step: int, epoch: int, lr: float, skipped: int) -> dict[str, Any]:
        """Log the means since the last record (metrics.jsonl, TensorBoard, the bar's text)."""
        now = time.perf_counter()
        rate = self.interval_steps / max(now - self.interval_start, 1e-9)
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        record = {"step": step, "epoch": epoch, **means, "lr": lr, "it_per_s": rate,
                  "nonfinite_skipped": skipped, "time": now - self.started}
        self.run.append_metrics(record)
        if self.board is not None:
            self.board.scalars(record, step)
        shown = "  ".join(f"{k} {v:.3f}" for k, v in means.items())
        self.progress.update(self.bar, info=shown, rate=f"{rate:6.1f} it/s")
        self.sums, self.count, self.interval_start, self.interval_steps = {}, 0, now, 0
        return record

    def advance(self, step: int) -> None:
        self.progress.update(self.bar, completed=step)

    def grid(self, grid: torch.Tensor, step: int) -> None:
        if self.board is not None:
            self.board.grid(grid, step)
