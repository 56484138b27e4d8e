"""translate.load's inputs at their edges (issue 27, class 6), on the bundled models: 0×0 and
1×1 images, empty batches, 16-bit PIL images, NaN/inf and values far outside [0, 1] give either
a correct result or a TranslateError naming the problem, never a raw torch or NumPy error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import translate
from translate.errors import TranslateError

NAMES = ("sr-x4", "photo2monet", "inpaint")


@pytest.fixture(scope="module")
def pipes() -> dict[str, translate.api.Pipe]:
    return {name: translate.load(name, device="cpu", precision="fp32") for name in NAMES}


def _call(pipe, image, mask=None):
    """The pipe on ``image``, with a mask of the image's own kind for inpainting."""
    if pipe.task != "inpaint":
        return pipe(image)
    if mask is None:
        if isinstance(image, torch.Tensor):
            mask = torch.zeros(*image.shape[:-3], 1, *image.shape[-2:])
            mask[..., : image.shape[-2] // 2, :] = 1
        else:
            h, w = (image.size[1], image.size[0]) if isinstance(image, Image.Image) \
                else image.shape[:2]
            mask = np.zeros((h, w), np.uint8)
            mask[: h // 2] = 255
    return pipe(image, mask)


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("image", [
    np.zeros((0, 0, 3), np.uint8), np.zeros((0, 7, 3), np.uint8), np.zeros((5, 0), np.uint16),
    Image.new("RGB", (0, 0)), torch.zeros(3, 0, 0), torch.zeros(2, 3, 6, 0),
], ids=["array-0x0", "array-7x0", "array16-0x5", "pil-0x0", "tensor-0x0", "batch-0x6"])
def test_an_image_without_pixels_is_refused_naming_its_size(pipes, name: str, image) -> None:
    with pytest.raises(TranslateError, match=r"^the image is \d+×\d+ pixels; an image needs at "
                       "least one pixel each way$") as excinfo:
        _call(pipes[name], image)
    _one_line(excinfo)


@pytest.mark.parametrize(("name", "channels", "size"), [
    ("sr-x4", 3, (64, 40)), ("sr-x4", 1, (64, 40)), ("photo2monet", 3, (16, 10)),
    ("inpaint", 3, (16, 10)),
])
def test_an_empty_batch_gives_an_empty_batch_of_the_output_shape(pipes, name: str,
                                                                 channels: int, size) -> None:
    x = torch.zeros(0, channels, 16, 10, dtype=torch.float16)
    y = _call(pipes[name], x)
    assert y.shape == (0, channels, *size)
    assert y.dtype == torch.float16


@pytest.mark.parametrize("name", NAMES)
def test_a_one_pixel_image_gives_a_result_or_names_the_smallest_size(pipes, name: str) -> None:
    pipe = pipes[name]
    image = np.full((1, 1, 3), 120, np.uint8)
    expected = SMALL_IMAGES[name]
    if expected is None:  # inpainting: the one pixel, a hole, is filled
        out = _call(pipe, image, np.full((1, 1), 255, np.uint8))
        assert out.shape == (1, 1, 3) and out.dtype == np.uint8
    else:
        with pytest.raises(TranslateError) as excinfo:
            _call(pipe, image)
        assert _one_line(excinfo) == (
            f"the model cannot process this 1×1 image: it is smaller than the network takes "
            f"(at least {expected}×{expected} pixels)")
        assert "training" not in str(excinfo.value)


# What each bundled model does with a 1×1 image: None = a result; N = refused, naming N×N.
SMALL_IMAGES: dict[str, int | None] = {"sr-x4": 2, "photo2monet": 8, "inpaint": None}


def _gray16(h: int = 20, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, (h, w), dtype=np.uint16)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["I;16", "I", "I;16B"])
def test_a_16_bit_pil_image_is_processed_as_a_16_bit_file(pipes, name: str, mode: str) -> None:
    """As the (H, W) uint16 array (which test_api holds equal to `translate infer` on a 16-bit
    PNG), and returned as 'I;16'."""
    pixels = _gray16()
    image = Image.fromarray(pixels)  # 'I;16'
    if mode == "I":  # as Pillow opens some 16-bit PNGs
        image = image.convert("I")
    elif mode == "I;16B":
        image = Image.frombytes("I;16B", image.size, pixels.astype(">u2").tobytes())
    assert image.mode == mode
    out = _call(pipes[name], image)
    assert out.mode == "I;16"
    expected = _call(pipes[name], pixels)
    assert expected.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_a_32_bit_pil_image_beyond_16_bits_is_refused(pipes) -> None:
    image = Image.fromarray(np.full((8, 8), 70_000, np.int32))  # mode 'I'
    with pytest.raises(TranslateError, match="values beyond 16 bits") as excinfo:
        pipes["sr-x4"](image)
    _one_line(excinfo)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("value", "word"), [(float("nan"), "NaN"), (float("inf"), "infinite"),
                                             (float("-inf"), "infinite")])
def test_non_finite_values_are_refused(pipes, name: str, value: float, word: str) -> None:
    x = torch.rand(1, 3, 16, 16)
    x[0, 1, 3, 4] = value
    with pytest.raises(TranslateError, match=f"^the tensor holds {word} values") as excinfo:
        _call(pipes[name], x)
    _one_line(excinfo)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("scale", "hint"), [
    (lambda x: x * 2 - 1, "(from [-1, 1]: (x + 1) / 2)"),
    (lambda x: x * 255, "(from 0-255: x / 255)"),
    (lambda x: x * 1e6 - 5e5, ""),
], ids=["minus1-1", "0-255", "huge"])
def test_values_far_outside_0_1_are_refused_with_the_fix(pipes, name: str, scale, hint) -> None:
    x = scale(torch.linspace(0, 1, 3 * 16 * 16).view(1, 3, 16, 16))
    with pytest.raises(TranslateError, match=r"^the tensor's values span \[") as excinfo:
        _call(pipes[name], x)
    message = _one_line(excinfo)
    assert message.endswith("expected floats in [0, 1]" + (f" {hint}" if hint else ""))


@pytest.mark.parametrize("name", NAMES)
def test_values_a_little_outside_0_1_are_clamped_as_a_file_would_hold_them(pipes,
                                                                         name: str) -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    overshoot = x.clone()
    overshoot[x > 0.9] += 0.08  # a bicubic resize's overshoot, up to 1.08
    overshoot[x < 0.1] -= 0.08
    assert overshoot.min() < 0 and overshoot.max() > 1
    torch.testing.assert_close(_call(pipes[name], overshoot),
                               _call(pipes[name], overshoot.clamp(0, 1)), rtol=0, atol=0)
