"""Audio-LLM judge running a local Qwen-Omni checkpoint with transformers.

Supported checkpoints (by ``model_type`` in their ``config.json``):

* ``qwen3_omni_moe`` — ``Qwen3OmniMoeForConditionalGeneration`` (e.g. Qwen3-Omni-30B-A3B-Instruct),
  loaded with ``enable_audio_output=False`` so the talker and code2wav are never built;
* ``qwen2_5_omni`` — ``Qwen2_5OmniForConditionalGeneration`` (what the reference scripts load),
  talker likewise disabled;
* ``qwen3_omni_moe_thinker`` / ``qwen2_5_omni_thinker`` — the thinker classes saved on their own.

Generation always runs on the thinker (the text model): batched, greedy, ``max_new_tokens``
short; the answer is the decoded tokens after the prompt. Inputs are built with the checkpoint's
processor (``AutoProcessor``). transformers' Qwen-Omni processors also need an image and a video
processor, which need torchvision; when the processor cannot be built (or with
``processor=manual``), the inputs are assembled from the checkpoint's own tokenizer, chat template
and feature extractor exactly as the processor does for audio-only turns: the audio placeholder
token is repeated once per encoder output frame, with the count from transformers' own
``_get_feat_extract_output_lengths`` of that model family.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from curation.models.audio_io import to_rate
from curation.models.lazy import LazyModel, auto_device, existing, require
from curation.models.registry import BackendSpecError

log = logging.getLogger(__name__)

# model_type -> (transformers class, wraps a thinker, family)
FAMILIES: dict[str, tuple[str, bool, str]] = {
    "qwen3_omni_moe": ("Qwen3OmniMoeForConditionalGeneration", True, "qwen3"),
    "qwen3_omni_moe_thinker": ("Qwen3OmniMoeThinkerForConditionalGeneration", False, "qwen3"),
    "qwen2_5_omni": ("Qwen2_5OmniForConditionalGeneration", True, "qwen2_5"),
    "qwen2_5_omni_thinker": ("Qwen2_5OmniThinkerForConditionalGeneration", False, "qwen2_5"),
}
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


class QwenOmniJudge(LazyModel):
    """``AudioJudge`` on a local Qwen3-Omni / Qwen2.5-Omni checkpoint folder.

    Options: ``path`` (checkpoint folder), ``device`` (``auto``: this rank's GPU when CUDA is
    available, else CPU; ``cpu``; ``cuda:N``; ``map`` to shard one model over all visible GPUs
    with ``device_map="auto"``), ``dtype`` (``auto``: the checkpoint's dtype on GPU, float32 on
    CPU; or ``bfloat16``/``float16``/``float32``), ``batch_size``, ``max_new_tokens``, ``system``
    (optional system prompt), ``attn`` (attention implementation, e.g. ``sdpa`` or
    ``flash_attention_2``; empty = transformers' default), ``processor`` (``auto``, ``processor``
    or ``manual``, see the module docstring).
    """

    backend = "qwen-omni judge"
    requires = {"torch": "torch", "transformers": "transformers"}

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 max_new_tokens: int = 8, system: str = "", attn: str = "",
                 processor: str = "auto"):
        if batch_size <= 0 or max_new_tokens <= 0:
            raise BackendSpecError("qwen-omni judge: batch_size and max_new_tokens must be > 0")
        if processor not in ("auto", "processor", "manual"):
            raise BackendSpecError(f"qwen-omni judge: processor={processor!r}; expected auto, "
                                   "processor or manual")
        if dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise BackendSpecError(f"qwen-omni judge: dtype={dtype!r}; expected auto, bfloat16, "
                                   "float16 or float32")
        self.path = str(path)
        self.device = device
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.system = system
        self.attn = attn
        self.processor_mode = processor
        self.model_id = self.path

    @property
    def provenance(self) -> dict[str, Any]:
        info = {"backend": "qwen-omni", "path": self.path, "max_new_tokens": self.max_new_tokens,
                "do_sample": False, "system": self.system}
        if self._loaded is not None:
            info.update(model_type=self._loaded["model_type"], inputs=self._loaded["inputs"],
                        dtype=str(self._loaded["dtype"]))
        return info

    # -- loading ------------------------------------------------------------------------------
    def _resolve_device(self, torch) -> tuple[str | None, Any]:
        if self.device == "map":
            return None, "auto"
        return auto_device(torch, self.device), None

    def _resolve_dtype(self, torch, device: str | None):
        if self.dtype == "auto":
            return "auto" if device != "cpu" else torch.float32
        return getattr(torch, self.dtype)

    @property
    def model(self):
        """The loaded thinker (loads the checkpoint on first use)."""
        return self.state()["thinker"]

    def load(self, torch, transformers) -> dict[str, Any]:
        existing(self.path, "qwen-omni judge", "model folder",
                 "download the checkpoint (e.g. `hf download Qwen/Qwen3-Omni-30B-A3B-Instruct "
                 "--local-dir DIR`) and pass path=DIR")
        config = transformers.AutoConfig.from_pretrained(self.path)
        model_type = getattr(config, "model_type", None)
        if model_type not in FAMILIES:
            raise BackendSpecError(
                f"qwen-omni judge: {self.path} holds a {model_type!r} model; expected one of "
                f"{', '.join(FAMILIES)}")
        class_name, wraps_thinker, family = FAMILIES[model_type]
        cls = getattr(transformers, class_name, None)
        if cls is None:
            raise BackendSpecError(
                f"qwen-omni judge: transformers {transformers.__version__} has no {class_name}; "
                "upgrade it: pip install -U transformers")
        device, device_map = self._resolve_device(torch)
        dtype = self._resolve_dtype(torch, device)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if device_map is not None:
            kwargs["device_map"] = device_map
        if self.attn:
            kwargs["attn_implementation"] = self.attn
        if wraps_thinker:
            kwargs["enable_audio_output"] = False  # never build the talker / code2wav
        log.info("loading %s from %s (device=%s, dtype=%s)", class_name, self.path,
                 device or "map", dtype)
        model = cls.from_pretrained(self.path, **kwargs)
        if hasattr(model, "disable_talker"):
            model.disable_talker()
        thinker = getattr(model, "thinker", model)
        if device is not None:
            thinker.to(device)
        thinker.eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        tokenizer.padding_side = "left"
        processor = None
        if self.processor_mode in ("auto", "processor"):
            try:
                processor = transformers.AutoProcessor.from_pretrained(self.path)
                if not hasattr(processor, "feature_extractor"):
                    raise TypeError(f"{type(processor).__name__} has no feature extractor")
            except Exception as exc:  # noqa: BLE001 - any failure to build it means: assemble by hand
                if self.processor_mode == "processor":
                    raise RuntimeError(
                        f"qwen-omni judge: cannot build the processor of {self.path} ({exc}); "
                        "install torchvision or use processor=manual") from exc
                log.info("qwen-omni judge: processor unavailable (%s: %s); assembling audio "
                         "inputs from the tokenizer and feature extractor",
                         type(exc).__name__, exc)
                processor = None
        if processor is not None:
            feature_extractor = processor.feature_extractor
            tokenizer = getattr(processor, "tokenizer", tokenizer)
            tokenizer.padding_side = "left"
        else:
            feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(self.path)
            if not getattr(tokenizer, "chat_template", None):
                tokenizer.chat_template = _read_chat_template(Path(self.path))
        thinker_config = getattr(config, "thinker_config", config)
        return {
            "torch": torch, "model": model, "thinker": thinker, "tokenizer": tokenizer,
            "processor": processor, "feature_extractor": feature_extractor, "family": family,
            "model_type": model_type, "thinker_config": thinker_config,
            "inputs": "processor" if processor is not None else "manual",
            "device": next(thinker.parameters()).device,
            "dtype": next(thinker.parameters()).dtype,
            "eos": _stop_ids(tokenizer, model),
        }

    # -- inputs -------------------------------------------------------------------------------
    def conversation(self, prompt: str) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []
        if self.system:
            turns.append({"role": "system", "content": [{"type": "text", "text": self.system}]})
        turns.append({"role": "user", "content": [{"type": "audio", "audio": "clip.wav"},
                                                  {"type": "text", "text": prompt}]})
        return turns

    def build_inputs(self, clips: list[np.ndarray], prompt: str) -> dict[str, Any]:
        """Model inputs for a batch of 16 kHz (feature-extractor rate) mono clips."""
        st = self.state()
        templater = st["processor"] or st["tokenizer"]
        text = templater.apply_chat_template(self.conversation(prompt), add_generation_prompt=True,
                                             tokenize=False)
        texts = [text] * len(clips)
        if st["processor"] is not None:
            inputs = st["processor"](text=texts, audio=list(clips), return_tensors="pt",
                                     padding=True)
            return dict(inputs)
        return self._manual_inputs(st, texts, clips)

    def _manual_inputs(self, st: dict[str, Any], texts: list[str],
                       clips: list[np.ndarray]) -> dict[str, Any]:
        tokenizer, fe, cfg = st["tokenizer"], st["feature_extractor"], st["thinker_config"]
        if st["family"] == "qwen3":
            proc_mod = require("transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe", self.backend,
                               "transformers")
            feats = fe(list(clips), sampling_rate=fe.sampling_rate, padding=True, truncation=False,
                       return_attention_mask=True, return_tensors="pt")
            n_window = getattr(getattr(cfg, "audio_config", None), "n_window", 50)
            counts = proc_mod._get_feat_extract_output_lengths(feats["attention_mask"].sum(-1),
                                                               n_window)
        else:
            proc_mod = require("transformers.models.qwen2_5_omni.processing_qwen2_5_omni", self.backend,
                               "transformers")
            feats = fe(list(clips), sampling_rate=fe.sampling_rate, padding="max_length",
                       return_attention_mask=True, return_tensors="pt")
            counts = proc_mod._get_feat_extract_output_lengths(feats["attention_mask"].sum(-1))
        audio_token = _audio_token(tokenizer, cfg)
        expanded = []
        for text, count in zip(texts, counts.tolist()):
            if text.count(audio_token) != 1:
                raise RuntimeError(
                    f"qwen-omni judge: the chat template of {self.path} rendered "
                    f"{text.count(audio_token)} audio placeholders {audio_token!r}; expected 1")
            expanded.append(text.replace(audio_token, audio_token * int(count)))
        enc = tokenizer(expanded, return_tensors="pt", padding=True)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "input_features": feats["input_features"],
                "feature_attention_mask": feats["attention_mask"]}

    # -- generation ---------------------------------------------------------------------------
    def _generate(self, clips: list[np.ndarray], prompt: str) -> list[str]:
        st = self.state()
        torch = st["torch"]
        inputs = self.build_inputs(clips, prompt)
        moved = {}
        for key, value in inputs.items():
            if hasattr(value, "to"):
                value = value.to(st["device"])
                if key == "input_features":
                    value = value.to(st["dtype"])
            moved[key] = value
        tokenizer = st["tokenizer"]
        with torch.inference_mode():
            out = st["thinker"].generate(
                **moved, max_new_tokens=self.max_new_tokens, do_sample=False,
                eos_token_id=st["eos"],
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                else st["eos"][0])
        sequences = getattr(out, "sequences", out)
        new_tokens = sequences[:, moved["input_ids"].shape[1]:]
        return [s.strip() for s in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def _generate_splitting(self, clips: list[np.ndarray], prompt: str) -> list[str | None]:
        st = self.state()
        torch = st["torch"]
        try:
            return list(self._generate(clips, prompt))
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(clips) == 1:
                log.error("qwen-omni judge: out of memory on a single clip; answer recorded as "
                          "failed (None)")
                return [None]
            half = len(clips) // 2
            log.warning("qwen-omni judge: out of memory on a batch of %d; splitting", len(clips))
            return (self._generate_splitting(clips[:half], prompt)
                    + self._generate_splitting(clips[half:], prompt))

    def ask(self, items: list[tuple[np.ndarray, int]], prompt: str) -> list[str | None]:
        """One decoded answer per ``(clip, rate)`` item, in order (``None``: out of memory)."""
        if not items:
            return []
        rate = int(self.state()["feature_extractor"].sampling_rate)
        clips = [to_rate(y, sr, rate) for y, sr in items]
        answers: list[str | None] = []
        for start in range(0, len(clips), self.batch_size):
            answers.extend(self._generate_splitting(clips[start:start + self.batch_size], prompt))
        return answers


def _audio_token(tokenizer, cfg) -> str:
    token = getattr(tokenizer, "audio_token", None)
    if token:
        return str(token)
    token_id = getattr(cfg, "audio_token_id", None) or getattr(cfg, "audio_token_index", None)
    if token_id is None:
        raise RuntimeError("qwen-omni judge: cannot tell the audio placeholder token: the "
                           "tokenizer has no audio_token and the config no audio_token_id")
    return tokenizer.convert_ids_to_tokens(int(token_id))


def _stop_ids(tokenizer, model) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids: list[int] = [vocab[t] for t in _STOP_TOKENS if t in vocab]
    candidates = [tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None),
                                                  "eos_token_id", None)]
    for cand in candidates:
        for value in (cand if isinstance(cand, (list, tuple)) else [cand]):
            if value is not None and int(value) < len(vocab) and int(value) not in ids:
                ids.append(int(value))
    if not ids:
        raise RuntimeError("qwen-omni judge: the tokenizer defines no end-of-turn token "
                           f"({', '.join(_STOP_TOKENS)}) and no eos_token")
    return ids


def _read_chat_template(folder: Path) -> str:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    as_json = folder / "chat_template.json"
    if as_json.is_file():
        template = json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
        if template:
            return template
    raise RuntimeError(f"qwen-omni judge: {folder} has no chat template (tokenizer_config.json, "
                       "chat_template.jinja or chat_template.json)")

