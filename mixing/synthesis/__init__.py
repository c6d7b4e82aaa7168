"""Synthesis of new mixture metadata from a single-event pool, in Hive's schema.

One concept per module:

* :mod:`.config` — :class:`SynthesisConfig` (defaults, YAML, validation);
* :mod:`.rules` — which label combinations are allowed (ontology relations, compatibility matrix);
* :mod:`.sampler` — parameter sampling without audio (sources, labels, clips, crops, SNRs);
* :mod:`.splits` — split assignment per original file and leak checks;
* :mod:`.labelled` — a pool built from a labelled list (``audio_path,text_label[,split]``);
* :mod:`.stats` — statistics and the printed summary;
* :mod:`.job` — :class:`Synthesizer`: level measurement with the renderer's code;
* :mod:`.parallel` — workers: index ranges in parallel, merged in index order;
* :mod:`.outputs` — files in, files out (``hive synthesize``).
"""

from .config import SynthesisConfig, SynthesisConfigError
from .job import SynthesisError, SynthesisResult, Synthesizer
from .outputs import load_pool, output_files, run_synthesis, write_outputs
from .parallel import synthesize, synthesize_chunks

__all__ = [
    "SynthesisConfig", "SynthesisConfigError", "SynthesisError", "SynthesisResult", "Synthesizer",
    "load_pool", "output_files", "run_synthesis", "synthesize", "synthesize_chunks", "write_outputs",
]
