"""Running keizoku's work on a Ray cluster (an optional extra: ``keizoku[ray]``).

``cluster`` connects (the only module that imports ray); ``ray_executor`` fits a
trial's cross-validation folds as Ray tasks for the search; ``ray_predict`` scores a
Parquet file or folder with Ray Data. See docs/ray.md and docs/decisions/0023-ray.md.
"""
