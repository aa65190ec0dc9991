"""The test-time augmentation views, by name. A module of its own, free of torch: the commands list the views in
their ``--help`` before importing anything heavy."""

TTA_VIEWS: tuple[tuple[str, float | None, bool], ...] = (
    ("center", 1.0, False),
    ("center_flip", 1.0, True),
    ("full", None, False),
    ("zoom_1.15", 1.15, False),
    ("zoom_1.3", 1.3, False),
    ("full_flip", None, True),
    ("zoom_1.15_flip", 1.15, True),
    ("zoom_1.3_flip", 1.3, True),
)
"""TTA views in order, as ``(name, zoom, hflip)``; ``num_views=V`` takes the first ``V``. All are center crops of
``image_size`` after a shortest-edge resize to ``floor(resize_size * zoom)`` (``resize_size`` being the eval
preset's), except ``zoom=None`` ("full"): shortest edge resized to ``image_size`` itself (``crop_pct = 1``: the
whole short side visible). ``center`` is exactly the eval preset; zooms > 1 enlarge the subject (useful for small
animals); ``*_flip`` views are horizontal mirrors of their unflipped view."""
