"""Training: the generic maximum-likelihood loop (``loop``), its checkpoints
(``checkpoint``), processes (``distributed``), devices and compilation (``devices``), and the
one flat tensor the optimizer steps (``flat_parameters``). It works on models and data it is
given; it never pulls, loads or names an artifact."""
