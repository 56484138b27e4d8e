"""The CUDA path's logic, tested on the CPU (issue 14): the torchrun backend and GPU per rank,
control collectives on gloo, per-rank seeds and RNG states, one host sync per optimizer step,
the EMA's multi-tensor update, the channels_last instance norm, native-bf16 detection,
``--fast-conv`` refused on a GPU, 16-bit inputs at fp32, JPEG bytes decoded by torchvision as a
GPU would, ONNX under torchrun, the benchmarks' peak table and variants. What needs a GPU
itself is in tests/test_gpu.py."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_cyclegan, smooth_image
from PIL import Image
from torch import nn
from torch.overrides import TorchFunctionMode

from translate import runtime
from translate.errors import TranslateError
from translate.infer import folder
from translate.infer.folder import InferReport, _Decode, _inputs, _Job, decode_item, run_folder
from translate.io.images import probe_plain_jpeg
from translate.nets.layers import InstanceNorm, instance_norm_nhwc
from translate.runtime import Precision, World
from translate.train import checkpoint
from translate.train.adversarial import adversarial_step
from translate.train.loop import Ema

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


# ── The process group.


class FakeDist:
    """Records what ``runtime.init_from_env`` asks of torch.distributed."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.initialized = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        d = runtime.dist
        monkeypatch.setattr(d, "is_initialized", lambda: self.initialized)
        monkeypatch.setattr(d, "init_process_group", self.init)
        monkeypatch.setattr(d, "new_group", lambda **kw: self.calls.append(("new_group", kw))
                            or "control-group")
        monkeypatch.setattr(d, "get_rank", lambda: 1)
        monkeypatch.setattr(d, "get_world_size", lambda: 2)
        monkeypatch.setattr(d, "barrier", lambda **kw: self.calls.append(("barrier", kw)))
        monkeypatch.setattr(d, "destroy_process_group", lambda: None)
        monkeypatch.setattr(torch.cuda, "set_device",
                            lambda dev: self.calls.append(("set_device", str(dev))))

    def init(self, backend: str) -> None:
        self.calls.append(("init", backend))
        self.initialized = True


@pytest.fixture
def two_ranks(monkeypatch: pytest.MonkeyPatch) -> FakeDist:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    fake = FakeDist()
    fake.install(monkeypatch)
    yield fake
    runtime.shutdown()


def gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("device, backend, set_device", [
    ("cpu", "gloo", None),  # train.device=cpu under torchrun on a GPU host: never NCCL
    ("auto", "nccl", "cuda:1"),
    ("cuda:0", "nccl", "cuda:1"),  # each rank its own GPU, whatever index was given
])
def test_the_backend_follows_where_the_rank_computes(two_ranks, monkeypatch, device, backend,
                                                      set_device):
    gpus(monkeypatch, 2)
    world = runtime.init_from_env(device)
    assert world == World(1, 2, 1)
    assert ("init", backend) in two_ranks.calls
    assert [c[1] for c in two_ranks.calls if c[0] == "set_device"] == (
        [set_device] if set_device else [])
    # Control collectives: a gloo group of their own, with a timeout longer than NCCL's 10 min.
    [(_, kw)] = [c for c in two_ranks.calls if c[0] == "new_group"]
    assert kw == {"backend": "gloo", "timeout": runtime.CONTROL_TIMEOUT}
    assert runtime.CONTROL_TIMEOUT.total_seconds() > 3600
    runtime.barrier()
    assert two_ranks.calls[-1] == ("barrier", {"group": "control-group"})


def test_cpu_under_torchrun_without_cuda_is_gloo(two_ranks, monkeypatch):
    gpus(monkeypatch, 0)
    runtime.init_from_env("auto")
    assert ("init", "gloo") in two_ranks.calls
    assert not [c for c in two_ranks.calls if c[0] == "set_device"]


def test_a_rank_without_a_gpu_of_its_own_is_refused(monkeypatch):
    gpus(monkeypatch, 1)  # one GPU, two processes on the node
    with pytest.raises(TranslateError, match="LOCAL_RANK 1 has no GPU of its own: 1 visible"):
        runtime.device_for(World(1, 2, 1), "auto")
    assert runtime.device_for(World(1, 2, 1), "cpu") == "cpu"
    assert runtime.device_for(World(0, 2, 0), "cuda:0") == "cuda:0"
    assert runtime.device_for(World(), "cuda:3") == "cuda:3"  # one process: as given


# ── Seeds and RNG states per rank.


def test_each_rank_draws_its_own_noise_and_rank_0_is_unchanged():
    draws = {}
    for rank in (0, 1, 2):
        runtime.seed_everything(5)
        runtime.seed_rank(5, rank)
        draws[rank] = torch.randn(4)
    runtime.seed_everything(5)
    assert torch.equal(draws[0], torch.randn(4))  # a one-process run draws what it always did
    assert not torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[1], draws[2])
    runtime.seed_everything(5)
    runtime.seed_rank(5, 1)
    assert torch.equal(draws[1], torch.randn(4))  # and seeded: the same again


def test_a_checkpoint_keeps_every_ranks_rng_and_each_rank_resumes_its_own():
    states = []
    for rank in (0, 1):
        runtime.seed_everything(rank + 10)
        states.append(checkpoint.capture_rng())
    state = {"rng": states[0], "rng_ranks": states, "config": {"train": {"seed": 3}}}
    assert checkpoint.rank_rng(state, World(1, 2, 1), 7) is states[1]
    assert checkpoint.rank_rng(state, World(0, 2, 0), 7) is states[0]
    assert checkpoint.rank_rng(state, World(), 7) is states[0]
    # Resumed by 3 ranks: rank 0 takes rank 0's; the others are reseeded, apart and repeatable.
    assert checkpoint.rank_rng(state, World(0, 3, 0), 7) is states[0]
    r1 = checkpoint.rank_rng(state, World(1, 3, 1), 7)["torch"]
    r2 = checkpoint.rank_rng(state, World(2, 3, 2), 7)["torch"]
    assert not torch.equal(r1, states[0]["torch"]) and not torch.equal(r1, r2)
    assert torch.equal(r1, checkpoint.rank_rng(state, World(1, 3, 1), 7)["torch"])


def test_cuda_rng_is_the_current_devices_and_restores_on_fewer_gpus(monkeypatch):
    set_to = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: torch.tensor([7], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s: set_to.append(int(s[0])))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                        lambda: pytest.fail("every GPU's state saved"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda s: pytest.fail("every GPU's state restored"))
    saved = checkpoint.capture_rng()
    assert [int(s[0]) for s in saved["cuda"]] == [7]
    for current, states, expected in [
        (0, [torch.tensor([7], dtype=torch.uint8)], 7),
        (1, [torch.tensor([7], dtype=torch.uint8)], 7),  # written on another GPU index
        # an older checkpoint with one state per GPU: the current device's, or GPU 0's
        (1, [torch.tensor([i], dtype=torch.uint8) for i in (4, 5, 6)], 5),
        (5, [torch.tensor([i], dtype=torch.uint8) for i in (4, 5, 6)], 4),
    ]:
        monkeypatch.setattr(torch.cuda, "current_device", lambda c=current: c)
        checkpoint.restore_rng({**saved, "cuda": states})
        assert set_to[-1] == expected


# ── The adversarial core: one host sync per optimizer step.


class HostSyncs(TorchFunctionMode):
    """Counts the tensor → Python conversions (each waits for a GPU to finish)."""

    NAMES = ("__float__", "__bool__", "__int__", "item", "tolist")

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_gan_step_waits_on_the_host_once_per_optimizer(precision):
    from helpers import ToyTask

    task = ToyTask()
    # The project's optimizer (fused Adam): under fp16 the GradScaler hands it the overflow
    # flag on the device instead of asking the host (SGD's step would add an ``item``).
    task.opt_g = torch.optim.Adam(task.G.parameters(), lr=0.01, fused=True)
    task.opt_d = torch.optim.Adam(task.D.parameters(), lr=0.01, fused=True)
    real = torch.randn(8, 4)
    with HostSyncs() as syncs:
        logs = adversarial_step(task, real, Precision(precision, torch.device("cpu")))
    assert set(logs) == {"d", "g"}
    assert syncs.seen == ["tolist", "tolist"], syncs.seen


# ── EMA and the instance norm.


def test_ema_multi_tensor_update_is_bitwise_the_per_parameter_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    ema = Ema(net, 0.9)
    reference = [p.detach().clone() for p in ema.model.parameters()]
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(2, 3, 8, 8))  # BatchNorm's running stats and its int64 counter move
        ema.update()
        for r, p in zip(reference, net.parameters(), strict=True):
            r.lerp_(p.detach(), 1.0 - 0.9)
    for r, p in zip(reference, ema.model.parameters(), strict=True):
        assert torch.equal(r, p)
    for b_ema, b in zip(ema.model.buffers(), net.buffers(), strict=True):
        assert torch.equal(b_ema, b)
    assert int(ema.model[1].num_batches_tracked) == 3


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_for_gpus_matches_group_norm_and_keeps_layout_and_dtype(affine):
    torch.manual_seed(0)
    norm = InstanceNorm(6, affine=affine)
    if affine:
        nn.init.normal_(norm.weight, 1.0, 0.3)
        nn.init.normal_(norm.bias, 0.0, 0.3)
    x = (torch.randn(2, 6, 10, 12) * 2 + 1).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    reference = nn.functional.group_norm(x, 6, norm.weight, norm.bias, norm.eps)
    assert torch.equal(norm(x), reference)  # on the CPU: group_norm itself
    y = instance_norm_nhwc(x, norm.eps, norm.weight, norm.bias)
    assert float((y - reference).abs().max()) < 1e-5
    assert y.is_contiguous(memory_format=torch.channels_last)
    yb = instance_norm_nhwc(x.bfloat16(), norm.eps, norm.weight, norm.bias)
    assert yb.dtype == torch.bfloat16 and yb.is_contiguous(memory_format=torch.channels_last)
    assert float((yb.float() - reference).abs().max()) < 0.05  # bf16 input rounding
    # gradients reach the input as through group_norm
    g_ref = torch.autograd.grad(reference.square().sum(), x)[0]
    g = torch.autograd.grad(instance_norm_nhwc(x, norm.eps, norm.weight, norm.bias)
                            .square().sum(), x)[0]
    assert float((g - g_ref).abs().max()) < 1e-3


# ── Precision.


def test_auto_precision_wants_native_bf16(monkeypatch):
    asked = []

    def bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # emulated only (e.g. a pre-Ampere GPU)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    p = Precision("auto", torch.device("cuda"))
    assert (p.name, p.chosen, asked) == ("fp16", True, [False])
    assert not Precision("bf16", torch.device("cpu")).chosen


# ── Inference.


@pytest.fixture
def tiny_model(tmp_path: Path):
    from translate.modelfile import load_model
    from translate.nets.resnet import ResnetGenerator

    torch.manual_seed(0)
    save_cyclegan(tmp_path / "model", ResnetGenerator(ngf=4, n_blocks=1),
                  ResnetGenerator(ngf=4, n_blocks=1))
    return load_model(tmp_path / "model", task=("cyclegan",))


def test_fast_conv_is_refused_on_a_gpu(tiny_model):
    from translate.infer import TranslationPipeline

    with pytest.raises(TranslateError, match="--fast-conv is a CPU path; on cuda"):
        TranslationPipeline(tiny_model, device="cuda", fast_conv=True)


class Recorder:
    """A pipeline whose precision was picked by ``auto`` as on a GPU (bf16): records the
    precision and size of every batch."""

    device = torch.device("cpu")

    def __init__(self):
        self.precision = Precision("bf16", self.device)
        self.precision.chosen = True
        self.calls: list[tuple[str, int]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.precision.name, x.shape[0]))
        return x


def test_16_bit_inputs_run_at_fp32_when_auto_chose_lower(tmp_path: Path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    deep = smooth_image(rng, 16).astype(np.uint16) * 257
    for name in ("a", "b", "d"):
        Image.fromarray(smooth_image(rng, 16)).save(src / f"{name}.png")
    from translate.io.images import read_image, write_image

    write_image(src / "c.png", deep, bit_depth=16)
    assert read_image(src / "c.png").bit_depth == 16
    pipe = Recorder()
    report = run_folder(pipe, src, tmp_path / "out", batch_size=4, num_workers=0,
                        show_progress=False)
    assert report.written == 4 and report.ok
    # a, b at bf16; c alone at fp32; d at bf16 again; the pipeline's own precision is back
    assert pipe.calls == [("bf16", 2), ("fp32", 1), ("bf16", 1)]
    assert pipe.precision.name == "bf16"
    # Asked for by name, bf16 is what runs, 16-bit or not; and on the CPU (auto = fp32) no
    # batch is split.
    pipe = Recorder()
    pipe.precision.chosen = False
    run_folder(pipe, src, tmp_path / "out2", batch_size=4, num_workers=0, show_progress=False)
    assert pipe.calls == [("bf16", 4)]


def jpeg_file(path: Path, image: Image.Image, **options) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    path.write_bytes(buffer.getvalue())
    return path


def test_plain_jpegs_go_to_the_device_as_bytes_and_decode_as_the_cpu_does(tmp_path: Path):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(smooth_image(rng, 24, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: read_image turns it upright, a plain decoder would not
    files = {
        "plain.jpg": jpeg_file(tmp_path / "plain.jpg", rgb),
        "gray.jpeg": jpeg_file(tmp_path / "gray.jpeg", rgb.convert("L")),
        "rotated.jpg": jpeg_file(tmp_path / "rotated.jpg", rgb, exif=exif),
        "cmyk.jpg": jpeg_file(tmp_path / "cmyk.jpg", rgb.convert("CMYK")),
        "image.png": tmp_path / "image.png",
    }
    rgb.save(files["image.png"])
    cut = tmp_path / "cut.jpg"  # the header is fine, the scan is cut off
    whole = files["plain.jpg"].read_bytes()
    cut.write_bytes(whole[: len(whole) * 3 // 4])
    files["cut.jpg"] = cut
    assert probe_plain_jpeg(files["plain.jpg"]) is not None
    assert probe_plain_jpeg(files["gray.jpeg"]).gray
    assert probe_plain_jpeg(files["plain.jpg"], max_pixels=100) is None
    jobs = [_Job(i, path, tmp_path / "out" / name) for i, (name, path) in enumerate(files.items())]
    items = [_Decode(jobs, None, device_jpeg=True)[i] for i in range(len(jobs))]
    as_bytes = {job.src.name for job, item in zip(jobs, items, strict=True) if "jpeg" in item}
    assert as_bytes == {"plain.jpg", "gray.jpeg", "cut.jpg"}
    assert not any("jpeg" in item for item in (_Decode(jobs, None)[i] for i in range(len(jobs))))
    for job, item in zip(jobs, items, strict=True):
        if job.src.name in ("plain.jpg", "gray.jpeg"):
            report = InferReport()
            [decoded], x = _inputs([item], torch.device("cpu"), report, None, None)
            cpu = decode_item(job, None)
            assert x.shape == (1, *cpu["pixels"].shape) and report.ok
            assert float((x[0] - cpu["pixels"]).abs().max()) <= 1 / 255 + 1e-6
            assert decoded["gray"] == cpu["gray"] and "jpeg" not in decoded
    # The cut-off scan: decoded where read_image decodes it (a warning or an error), never a
    # crash; a batch with it keeps its other images.
    report = InferReport()
    cut_item = items[list(files).index("cut.jpg")]
    plain_item = _Decode(jobs, None, device_jpeg=True)[0]
    kept, x = _inputs([plain_item, cut_item], torch.device("cpu"), report, None, None)
    assert kept[0]["job"].src.name == "plain.jpg" and x.shape[0] == len(kept)
    assert len(kept) + len(report.failures) == 2


def test_device_jpeg_decoding_is_off_on_the_cpu():
    assert folder.device_jpeg_decoding(torch.device("cpu")) is False


def test_onnx_under_torchrun_takes_the_ranks_gpu(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from translate.infer.onnx import providers_for

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    rank1 = World(1, 2, 1)
    want = [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for("auto", rank1) == want
    assert providers_for("cuda", rank1) == want
    assert providers_for("cuda:0", rank1) == want
    assert providers_for("cpu", rank1) == ["CPUExecutionProvider"]
    assert providers_for("cuda:3", World()) == [("CUDAExecutionProvider", {"device_id": 3}),
                                                "CPUExecutionProvider"]
    assert providers_for("auto", World()) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_inpainting_eval_runs_at_fp32_like_the_others():
    import inspect

    from translate.eval.inpaint import evaluate_inpaint

    assert inspect.signature(evaluate_inpaint).parameters["precision"].default == "fp32"


# ── Benchmarks.


@pytest.mark.parametrize("name, precision, tf32, peak", [
    ("NVIDIA H200 NVL", "bf16", False, 835.0),
    ("NVIDIA H200", "bf16", False, 989.0),
    ("NVIDIA H100 80GB HBM3", "fp32", True, 494.0),
    ("NVIDIA H100 80GB HBM3", "fp32", False, 67.0),
    ("NVIDIA H100 PCIe", "fp16", False, 756.0),
    ("Tesla T4", "bf16", False, None),
])
def test_bench_train_peaks_by_device_name(name, precision, tf32, peak):
    bench = load_script("bench_train")
    assert bench.peak_by_name(name, precision, tf32)[0] == peak


def test_bench_train_tf32_is_fp32_with_tensor_cores():
    bench = load_script("bench_train")
    [fp32, tf32, bf16] = bench.parse_settings("fp32,tf32,bf16+cl+compile")
    assert (fp32.precision, fp32.tf32) == ("fp32", False)
    assert (tf32.precision, tf32.tf32) == ("fp32", True)
    assert (bf16.precision, bf16.channels_last, bf16.compile, bf16.tf32) == (
        "bf16", True, True, False)


@pytest.mark.parametrize("variant", ["pipeline", "pipeline-no-fast-conv", "pipeline-compile"])
def test_bench_infer_times_the_pipeline_for_every_pipeline_variant(variant):
    bench = load_script("bench_infer")
    assert bench.runner_for(variant) is bench.run_pipeline
    assert bench.runner_for("naive") is bench.run_naive
