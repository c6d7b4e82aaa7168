"""Mixture curation: an audio LLM judges each source among its ontology confusion pool, mixtures
are scored by how many of their sources it recognises, and the best are kept per split and
number of sources. Modules: :mod:`.pools` (confusion pools, option order), :mod:`.prompt`
(question, answer parsing), :mod:`.cache` (answer cache), :mod:`.audio` (stems),
:mod:`.scoring`, :mod:`.policy` (keep policy), :mod:`.report` (tables, summary), :mod:`.job`
(ranks, merge, outputs)."""
