"""Copy a trained run's inference model into the package as a bundled model (translate/models/NAME).

    python scripts/bundle_model.py RUN NAME --data "..." --headline "..." [--fp16]
        [--swap-directions] [--weights-of OTHER]

Writes translate/models/NAME/model.safetensors (fp16 storage with --fp16: half the bytes; the
loader copies the weights into fp32 networks) and model.json with a ``card`` block (data,
headline, parameters, the source run's step) that `translate models` lists. The card's prose and
measured figures go in translate/models/NAME/CARD.md, written by hand from the eval commands.

With --weights-of OTHER (a bundled model made from the same RUN, e.g. monet2photo beside
photo2monet), no weights file is written: model.json says ``"weights_of": OTHER`` and the loader
reads OTHER's, so one run is stored once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("--data", required=True, help="what it was trained on (one line)")
    p.add_argument("--headline", required=True, help="the headline figure (one line)")
    p.add_argument("--eval", default="{}", help="JSON of the card's measured figures")
    p.add_argument("--fp16", action="store_true", help="store the weights as fp16")
    p.add_argument("--swap-directions", action="store_true",
                   help="CycleGAN: the run's b2a becomes the model's a2b (its default) and the "
                        "other way round, e.g. photo2monet from a run whose A is the paintings")
    p.add_argument("--weights-of", metavar="OTHER",
                   help="load the bundled model OTHER's weights file (made from the same run) "
                        "instead of writing another copy")
    args = p.parse_args(argv)

    meta = json.loads((args.run / "model.json").read_text(encoding="utf-8"))
    if args.swap_directions:
        if set(meta.get("directions", {})) != {"a2b", "b2a"}:
            raise SystemExit(f"--swap-directions: {args.run} is not a model with both directions")
        meta["directions"] = {"a2b": meta["directions"]["b2a"], "b2a": meta["directions"]["a2b"]}
    tensors = load_file(str(args.run / "model.safetensors"))
    if args.fp16:
        tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    params = sum(v.numel() for k, v in tensors.items() if not k.endswith(("running_mean",
                 "running_var", "num_batches_tracked")))
    state = torch.load(args.run / "state" / "last.pt", map_location="cpu", weights_only=True)
    meta["card"] = {
        "data": args.data,
        "headline": args.headline,
        "parameters": params,
        "trained_steps": int(state["step"]),
        "storage": "fp16" if args.fp16 else "fp32",
        "eval": json.loads(args.eval),
    }
    out = ROOT / "translate" / "models" / args.name
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    if args.weights_of:
        weights = out.parent / args.weights_of / "model.safetensors"
        stored = {k: v.to(tensors[k].dtype) for k, v in load_file(str(weights)).items()}
        if stored.keys() != tensors.keys() or any(not torch.equal(stored[k], tensors[k])
                                                   for k in tensors):
            raise SystemExit(f"--weights-of: {weights} does not hold {args.run}'s weights")
        meta = {"weights_of": args.weights_of, **meta}
        (out / "model.safetensors").unlink(missing_ok=True)
    else:
        save_file(tensors, str(weights))
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} ({weights.stat().st_size / 1e6:.2f} MB in {weights}, "
          f"{params:,} parameters, step {meta['card']['trained_steps']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
