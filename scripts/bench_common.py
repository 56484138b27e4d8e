"""What the benchmark scripts print about the machine, so every table names where it ran."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: torch.device) -> dict[str, Any]:
    """Platform, CPU, torch and device facts, and the load average at the start."""
    import translate

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "translate": str(Path(translate.__file__).parent),
        "device": str(device),
        "device_name": cpu_model(),
        "load_average_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    else:
        info["mkldnn"] = torch.backends.mkldnn.is_available()
    return info


def finish(header: dict[str, Any], payload: dict[str, Any], json_path: Path | None,
           note: str) -> None:
    """Record the load average at the end, print it with ``note``, write ``payload`` as JSON."""
    import json

    header["load_average_end"] = list(os.getloadavg())
    print(f"\nload average at the end {header['load_average_end']}; {note}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {json_path}")
