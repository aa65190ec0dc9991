"""The location/date prior (``GeoPriorConfig``/``GeoPriorModel`` live in :mod:`inat_hf.models`): its records
(:mod:`.records`), options (:mod:`.arguments`), training loop, baselines and report (:mod:`.training`), and its fusion
with an image model (:mod:`.fusion`). Import the submodules: :mod:`.arguments` stays free of torch for ``--help``."""
