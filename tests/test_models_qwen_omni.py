"""Qwen-Omni judge: tiny randomly initialised checkpoints built here, real transformers path.

Each checkpoint folder is what ``save_pretrained`` writes for a real one (config, safetensors,
tokenizer, feature extractor, chat template), only tiny: 1 layer, hidden size 32, 4 experts, a
word-level vocabulary with the special tokens the Qwen-Omni templates use. The judge loads it
from the folder and runs ``generate`` end to end; the answers are garbage but one per item.

transformers' Qwen-Omni processors insist on an image and a video processor, which need
torchvision (not installed in this project's test environment), so these folders carry no
processor config: the judge then assembles audio inputs from the tokenizer and feature extractor
(``processor=manual``), the path documented in :mod:`curation.models.qwen_omni`. To check that
path against the real processor classes, the tests build ``Qwen3OmniMoeProcessor`` and
``Qwen2_5OmniProcessor`` without image/video processors (their class check patched out for the
test) and compare the model inputs tensor by tensor, then run the judge through the processor.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from curation.models import make_judge  # noqa: E402
from curation.models.qwen_omni import QwenOmniJudge  # noqa: E402

SPECIAL = {  # attribute name on the tokenizer -> token text (Qwen3-Omni spelling)
    "audio_token": "<|audio_pad|>", "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
}
WORDS = ["system", "user", "assistant", "True", "False", "yes", "no", "Does", "this", "clip",
         "contain", "only", "one", "sound", "?", ".", ":", ",", "Answer"]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
N_MELS = 32


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *SPECIAL.values()]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS + ["[UNK]"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(specials)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="<|endoftext|>",
        eos_token="<|im_end|>", extra_special_tokens=dict(SPECIAL))
    tok.chat_template = TEMPLATE
    return tok


def _thinker_common(tok):
    return dict(
        audio_token_id=tok.audio_token_id, image_token_id=tok.image_token_id,
        video_token_id=tok.video_token_id, user_token_id=tok.convert_tokens_to_ids("user"),
        audio_start_token_id=tok.convert_tokens_to_ids("<|audio_start|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"))


def _save(folder, model, tok):
    from transformers import WhisperFeatureExtractor
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=N_MELS).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    from transformers.models.qwen3_omni_moe import (
        Qwen3OmniMoeConfig,
        Qwen3OmniMoeForConditionalGeneration,
    )
    tok = _tokenizer()
    thinker = dict(
        audio_config=dict(num_mel_bins=N_MELS, encoder_layers=1, encoder_attention_heads=2,
                          encoder_ffn_dim=32, d_model=16, output_dim=32, downsample_hidden_size=8),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                           out_hidden_size=32, deepstack_visual_indexes=[0],
                           num_position_embeddings=64),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=16, moe_intermediate_size=16, num_experts=4,
                         num_experts_per_tok=2, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3], "interleaved": True}),
        **_thinker_common(tok))
    torch.manual_seed(0)
    config = Qwen3OmniMoeConfig(thinker_config=thinker, enable_audio_output=False)
    model = Qwen3OmniMoeForConditionalGeneration(config).eval()
    return _save(tmp_path_factory.mktemp("qwen3-omni-tiny"), model, tok)


@pytest.fixture(scope="module")
def qwen25_dir(tmp_path_factory):
    from transformers.models.qwen2_5_omni import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
    )
    tok = _tokenizer()
    common = _thinker_common(tok)
    thinker = dict(
        audio_config=dict(num_mel_bins=N_MELS, encoder_layers=1, encoder_attention_heads=2,
                          encoder_ffn_dim=32, d_model=16, output_dim=32),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                           out_hidden_size=32, fullatt_block_indexes=[0]),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3]}),
        audio_token_index=common["audio_token_id"], image_token_index=common["image_token_id"],
        video_token_index=common["video_token_id"], user_token_id=common["user_token_id"],
        audio_start_token_id=common["audio_start_token_id"],
        vision_start_token_id=common["vision_start_token_id"])
    torch.manual_seed(0)
    config = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    folder = _save(tmp_path_factory.mktemp("qwen25-omni-tiny"), model, tok)
    torch.save({}, folder / "spk_dict.pt")  # the class loads the speaker table on from_pretrained
    return folder


def _clips():
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(16000).astype(np.float32), 16000),
            (0.1 * rng.standard_normal(22050).astype(np.float32), 44100),  # resampled to 16 kHz
            (0.1 * rng.standard_normal(4000).astype(np.float32), 16000)]


@pytest.mark.slow  # end to end over the toy corpus
def test_qwen3_omni_generate_end_to_end(qwen3_dir):
    judge = make_judge(f"qwen-omni:path={qwen3_dir},device=cpu,batch_size=2,max_new_tokens=3")
    assert isinstance(judge, QwenOmniJudge)
    assert judge._loaded is None  # lazy: nothing loaded by the factory
    answers = judge.ask(_clips(), "Does this clip contain only one sound ? Answer True or False .")
    assert len(answers) == 3
    assert all(isinstance(a, str) for a in answers)
    st = judge._loaded
    assert st["model_type"] == "qwen3_omni_moe" and st["inputs"] == "manual"
    assert not hasattr(st["model"], "talker")  # talker never built
    assert judge.provenance["model_type"] == "qwen3_omni_moe"
    # greedy: the same clip gives the same answer, alone or in a batch
    again = judge.ask([_clips()[0]], "Does this clip contain only one sound ? Answer True or False .")
    assert again == answers[:1]


def test_qwen3_manual_inputs_match_processor_layout(qwen3_dir):
    judge = QwenOmniJudge(str(qwen3_dir), device="cpu")
    clips = [c for c, _ in _clips()[:1]] + [np.zeros(8000, np.float32)]
    inputs = judge.build_inputs(clips, "Does this clip contain one sound ?")
    tok = judge._loaded["tokenizer"]
    from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import (
        _get_feat_extract_output_lengths,
    )
    n_audio = (inputs["input_ids"] == tok.audio_token_id).sum(-1)
    expected = _get_feat_extract_output_lengths(inputs["feature_attention_mask"].sum(-1), 50)
    assert n_audio.tolist() == expected.tolist()
    assert inputs["feature_attention_mask"].sum(-1).tolist() == [100, 50]  # 10 ms hop, padded
    assert inputs["input_features"].shape[1] == N_MELS
    assert (inputs["attention_mask"][:, -1] == 1).all()  # left padding: prompts end together
    # the optional system prompt becomes a system turn
    judge.system = "You judge sounds ."
    text = tok.decode(judge.build_inputs(clips[:1], "Does")["input_ids"][0])
    assert "system" in text


def test_qwen25_omni_generate_end_to_end(qwen25_dir):
    judge = make_judge(f"qwen2.5-omni:path={qwen25_dir},device=cpu,max_new_tokens=2")
    answers = judge.ask(_clips()[:2], "Does this clip contain only one sound ?")
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert judge._loaded["model_type"] == "qwen2_5_omni"
    assert judge._loaded["inputs"] == "manual"
    # Qwen2.5-Omni pads audio features to 30 s, like its processor
    inputs = judge.build_inputs([_clips()[0][0]], "Does")
    assert inputs["input_features"].shape[-1] == 3000


def test_qwen_omni_errors(tmp_path, qwen3_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        QwenOmniJudge(str(tmp_path / "missing")).ask([(np.zeros(160, np.float32), 16000)], "x")
    judge = QwenOmniJudge(str(qwen3_dir), device="cpu", processor="processor")
    with pytest.raises(RuntimeError, match="processor=manual"):
        judge.ask([(np.zeros(1600, np.float32), 16000)], "Does")
    assert QwenOmniJudge(str(qwen3_dir)).ask([], "Does") == []


def _real_processor(monkeypatch, folder, family):
    from transformers import AutoTokenizer, WhisperFeatureExtractor, processing_utils
    from transformers.models.qwen2_5_omni import Qwen2_5OmniProcessor
    from transformers.models.qwen3_omni_moe import Qwen3OmniMoeProcessor
    monkeypatch.setattr(processing_utils.ProcessorMixin, "check_argument_for_proper_class",
                        lambda self, name, arg: type(arg))  # allow image/video processors = None
    tok = AutoTokenizer.from_pretrained(folder)
    cls = Qwen3OmniMoeProcessor if family == "qwen3" else Qwen2_5OmniProcessor
    return cls(image_processor=None, video_processor=None, tokenizer=tok, chat_template=tok.chat_template,
               feature_extractor=WhisperFeatureExtractor.from_pretrained(folder))


@pytest.mark.parametrize("family", ["qwen3", "qwen2_5"])
def test_manual_inputs_equal_the_real_processor(monkeypatch, request, family):
    folder = request.getfixturevalue("qwen3_dir" if family == "qwen3" else "qwen25_dir")
    processor = _real_processor(monkeypatch, folder, family)
    judge = QwenOmniJudge(str(folder), device="cpu", processor="manual", system="Judge sounds .")
    rng = np.random.default_rng(5)
    clips = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 5000, 12345)]
    prompt = "Does this clip contain only one sound ?"
    mine = judge.build_inputs(clips, prompt)
    text = processor.apply_chat_template(judge.conversation(prompt), add_generation_prompt=True,
                                         tokenize=False)
    theirs = processor(text=[text] * 3, audio=clips, return_tensors="pt", padding=True)
    assert set(mine) <= set(theirs)
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


def test_judge_runs_through_the_processor_when_it_loads(monkeypatch, qwen3_dir):
    processor = _real_processor(monkeypatch, qwen3_dir, "qwen3")
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained",
                        classmethod(lambda cls, *a, **k: processor))
    judge = QwenOmniJudge(str(qwen3_dir), device="cpu", processor="processor", max_new_tokens=2)
    answers = judge.ask(_clips()[:2], "Does this clip contain only one sound ?")
    assert judge._loaded["inputs"] == "processor"
    manual = QwenOmniJudge(str(qwen3_dir), device="cpu", processor="manual", max_new_tokens=2)
    assert manual.ask(_clips()[:2], "Does this clip contain only one sound ?") == answers


def test_talker_is_never_built_even_if_the_checkpoint_enables_it(tmp_path, qwen3_dir, monkeypatch):
    import json
    import shutil
    from transformers.models.qwen3_omni_moe import Qwen3OmniMoeForConditionalGeneration
    folder = tmp_path / "with-talker"
    shutil.copytree(qwen3_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["enable_audio_output"] = True  # as in the released Qwen3-Omni checkpoints
    (folder / "config.json").write_text(json.dumps(cfg))

    def refuse(self):
        raise AssertionError("the talker must not be built")

    monkeypatch.setattr(Qwen3OmniMoeForConditionalGeneration, "enable_talker", refuse)
    judge = QwenOmniJudge(str(folder), device="cpu", max_new_tokens=1)
    assert len(judge.ask(_clips()[:1], "Does")) == 1
