"""The default training recipe of the CNN classifiers (one for every data set, chosen by cross-validation).

A recipe is a small dict of choices (network width, class balancing, learning rate, augmentation …) that
:func:`recipe_configs` turns into a :class:`~napari_medimg.learn.cnn.models.ModelConfig` and a
:class:`~napari_medimg.learn.cnn.train.TrainConfig` for 2D or 3D images.  The CLI (``medimg cnn train``) and
the napari CNN panel start from :data:`DEFAULT_RECIPE`; ``benchmarks/bench_cnn.py --search`` is how it was
chosen (k-fold cross-validation on train + val of BreastMNIST, PneumoniaMNIST and AdrenalMNIST3D, the same
recipe for all three; see benchmarks/README.md).
"""

from __future__ import annotations

__all__ = ["DEFAULT_RECIPE", "AUGMENTATIONS", "recipe_configs"]

#: augmentation levels: affine (rotation in degrees, scale and translation fractions) and intensity jitter
AUGMENTATIONS = {
    "flips": {"rotate_deg": 0.0, "scale": 0.0, "translate": 0.0, "intensity": 0.0},
    "light": {"rotate_deg": 10.0, "scale": 0.1, "translate": 0.05, "intensity": 0.1},
    "strong": {"rotate_deg": 20.0, "scale": 0.2, "translate": 0.1, "intensity": 0.2},
}

#: the recipe the CLI and the panel use unless told otherwise: chosen by 3-fold cross-validation on train + val
#: of BreastMNIST, PneumoniaMNIST and AdrenalMNIST3D (the best mean out-of-fold AUC over the three of 11
#: recipes; ``benchmarks/bench_cnn.py --search``, figures in benchmarks/README.md).  It differs from the first
#: step's default (class-weighted loss, light affine + intensity augmentation) in its balanced sampler and
#: flip-only augmentation.
DEFAULT_RECIPE = {
    "width_2d": 32,
    "width_3d": 8,
    "depths": [1, 1, 1],
    "dropout": 0.2,
    "balance": "sampler",
    "lr": 3e-3,
    "batch_size": 64,
    "epochs": 60,
    "augmentation": "flips",
    "label_smoothing": 0.0,
}


def recipe_configs(dims: int, recipe: dict | None = None, **overrides) -> tuple[dict, dict]:
    """Model and training settings of a recipe for ``dims``-dimensional images.

    Parameters
    ----------
    dims : int
        2 or 3.
    recipe : dict, optional
        Keys of :data:`DEFAULT_RECIPE` to change (the rest come from it).
    **overrides
        Further :class:`~napari_medimg.learn.cnn.train.TrainConfig` fields (``minutes``, ``seed`` …).

    Returns
    -------
    tuple of dict
        ``(model_config, train_config)`` keyword arguments.

    Raises
    ------
    ValueError
        For an unknown recipe key or augmentation level.

    Example
    -------
    >>> model, training = recipe_configs(2, {"balance": "none"}, minutes=1.0)
    >>> model["width"], training["balance"], training["minutes"]
    (32, 'none', 1.0)
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    unknown = sorted(set(recipe or {}) - set(DEFAULT_RECIPE))
    if unknown:
        raise ValueError(f"unknown recipe keys {unknown}; known: {sorted(DEFAULT_RECIPE)}")
    chosen = {**DEFAULT_RECIPE, **(recipe or {})}
    if chosen["augmentation"] not in AUGMENTATIONS:
        raise ValueError(
            f"augmentation must be one of {sorted(AUGMENTATIONS)}, got {chosen['augmentation']!r}"
        )
    model = {
        "dims": dims,
        "width": int(chosen["width_3d"] if dims == 3 else chosen["width_2d"]),
        "depths": list(chosen["depths"]),
        "dropout": float(chosen["dropout"]),
        "stem_stride": 2 if dims == 3 else 1,
        "stem_pool": dims == 3,
    }
    training = {
        "epochs": int(chosen["epochs"]),
        "batch_size": int(chosen["batch_size"]),
        "lr": float(chosen["lr"]),
        "balance": chosen["balance"],
        "label_smoothing": float(chosen["label_smoothing"]),
        "flip_axes": [-1] if dims == 2 else [-3, -2, -1],
        **AUGMENTATIONS[chosen["augmentation"]],
        **overrides,
    }
    return model, training
