"""The files of a model bundle: `config.json`, `model.safetensors` and the tokenizer.

Written from a trained joint-stage module (`write_bundle`) and read back with JSON and
safetensors only, never pickle (`read_config`, `load_weights`). The weights are every tensor of
the module's state dict, buffers included, each stored once (a tensor shared by two names, as
the decoder's own persona encoder or tied embeddings, under its first name); a frozen pretrained
decoder (PEFT mode) is left out and reloaded from its source, named in the config.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from morpheus_pl.errors import CheckpointError, ConfigError

FORMAT = "morpheus_pl.bundle"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ATLAS = "atlas.json"
ENCODER_TOKENIZER = "encoder_tokenizer"
BUFFER_MEANINGS = {
    "codebook.initialised": "whether stage 2 filled the codes (true in every trained bundle)",
    "codebook.usage": "per-code usage EMA over joint training's assignments (uniform use = 1)",
}
_DECODER_KEYS_SET_FROM_TOKENIZER = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")
_DECODER_KEYS_NOT_ARCHITECTURE = ("architectures", "transformers_version", "_name_or_path",
                                  "dtype", "torch_dtype", "model_type")


def stored_keys(module: nn.Module) -> list[str]:
    """State-dict keys the bundle stores: each tensor once, under its first name, without the
    frozen pretrained decoder's (`reloadable_keys`)."""
    reloadable = module.reloadable_keys()
    seen, keys = set(), []
    for name, tensor in module.state_dict(keep_vars=True).items():
        storage = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if name in reloadable or (tensor.numel() and storage in seen):
            continue
        seen.add(storage)
        keys.append(name)
    return keys


def decoder_architecture(decoder: nn.Module) -> dict:
    """A fine-tuned pretrained decoder's config as `model.architecture` (source=config), so that
    the bundle rebuilds it from its own weights, without the original model."""
    config = decoder.config.to_diff_dict()
    arch = {k: v for k, v in config.items()
            if k not in _DECODER_KEYS_SET_FROM_TOKENIZER + _DECODER_KEYS_NOT_ARCHITECTURE}
    return {"model_type": decoder.config.model_type, **arch}


def stage_arguments(module: nn.Module) -> dict:
    """The joint stage's constructor arguments but its tokenizer folder, as plain JSON; a
    pretrained decoder whose weights all trained becomes a `source: config` decoder."""
    args = json.loads(json.dumps({k: v for k, v in module.hparams.items() if k != "tokenizer_dir"}))
    model = args["model"]
    if model["source"] == "pretrained" and not module.reloadable_keys():
        args["model"] = {**model, "source": "config", "name_or_path": None, "gguf_file": None,
                         "architecture": decoder_architecture(module.decoder),
                         "trained_from": model["name_or_path"]}
    return args


def buffer_meanings(module: nn.Module) -> dict[str, dict]:
    """Shape, dtype and meaning of every buffer the state dict holds (the owner module's
    docstring where BUFFER_MEANINGS has none)."""
    state = module.state_dict(keep_vars=True)
    out = {}
    for name, buffer in module.named_buffers():
        if name not in state or name.startswith("decoder."):
            continue
        owner = module.get_submodule(name.rpartition(".")[0])
        doc = (type(owner).__doc__ or type(owner).__name__).strip().splitlines()[0]
        out[name] = {"shape": list(buffer.shape), "dtype": str(buffer.dtype).removeprefix("torch."),
                     "meaning": BUFFER_MEANINGS.get(name, f"{type(owner).__name__}: {doc}")}
    return out


def write_bundle(module: nn.Module, out_dir: Path, config: dict, segment_tokenizer=None,
                 extra_files: Sequence[Path] = ()) -> Path:
    """Write the bundle into `out_dir` (with copies of `extra_files`: the atlas), replacing an
    earlier bundle there (never another folder's files): built beside it, then renamed."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / CONFIG).is_file():
        raise ConfigError(f"export.dir={out_dir} exists and is not a model bundle (no {CONFIG}): "
                          f"choose a new or empty folder")
    staging = out_dir.with_name(f"{out_dir.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    state = module.state_dict()
    save_file({k: state[k].detach().cpu().contiguous() for k in stored_keys(module)},
              str(staging / WEIGHTS), metadata={"format": FORMAT})
    module.tokenizer.save_pretrained(str(staging))
    if segment_tokenizer is not None:
        segment_tokenizer.save_pretrained(str(staging / ENCODER_TOKENIZER))
    for file in extra_files:
        shutil.copy2(file, staging / Path(file).name)
    full = {"format": FORMAT, "format_version": VERSION, **config,
            "stage_arguments": stage_arguments(module), "buffers": buffer_meanings(module)}
    (staging / CONFIG).write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def read_config(folder: Path) -> dict:
    """A bundle's config.json, checked to be one this version reads."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a model bundle (no {CONFIG}; write one with "
                              f"`python -m morpheus_pl.run stage=export`)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected a {FORMAT!r} config (key 'format')")
    if config.get("format_version") != VERSION:
        raise CheckpointError(f"{path}: bundle format version {config.get('format_version')!r}; "
                              f"this morpheus_pl reads version {VERSION}")
    return config


def load_weights(module: nn.Module, path: Path) -> None:
    """Load the bundle's weights into a freshly built module: exactly the keys it stores."""
    try:
        state: dict[str, Tensor] = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types on bad bytes
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    expected = set(stored_keys(module))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit the model its config.json describes: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit the model its config.json describes: "
                              f"{err}") from err
