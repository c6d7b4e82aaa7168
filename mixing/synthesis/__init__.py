"""Synthesis of new mixture metadata from a single-event pool, in Hive's schema.

One concept per module:

* :mod:`.config` — :class:`SynthesisConfig` (defaults, YAML, validation);
* :mod:`.rules` — which label combinations are allowed (ontology relations, compatibility matrix);
* :mod:`.sampler` — parameter sampling without audio (sources, labels, clips, crops, SNRs);
* :mod:`.splits` — split assignment per original file and leak checks;
* :mod:`.labelled` — a pool built from a labelled list (``audio_path,text_label[,split]``);
* :mod:`.stats` — statistics and the printed summary;
* :mod:`.job` — level measurement with the renderer's code, workers, outputs (``hive synthesize``).
"""

from .config import SynthesisConfig, SynthesisConfigError
from .job import (
    SynthesisError,
    SynthesisResult,
    Synthesizer,
    load_pool,
    output_files,
    run_synthesis,
    synthesize,
    synthesize_chunks,
    write_outputs,
)

__all__ = [
    "SynthesisConfig", "SynthesisConfigError", "SynthesisError", "SynthesisResult", "Synthesizer",
    "load_pool", "output_files", "run_synthesis", "synthesize", "synthesize_chunks", "write_outputs",
]
