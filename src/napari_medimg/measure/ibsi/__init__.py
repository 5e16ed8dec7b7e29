"""IBSI 1 compliant radiomics: the standard image-processing chain and every IBSI 1 feature family.

Columns are the tags of the IBSI reference tables (``morph_volume``, ``stat_kurt``, ``cm_joint_max_3D_avg``,
``szm_sze_2D`` …) plus the diagnostic tags of the processing chain (``img_dim_x_init_img`` …).  This mode sits
beside the pyradiomics-compatible default of :func:`napari_medimg.measure.compute_features`; docs/features.md
lists the differences and the compliance table.
"""

from .compute import IBSI_FAMILIES, compute_ibsi_features, ibsi_features, parse_families
from .processing import EmptyRoiError, discretise, interpolate, prepare_roi, resegment
from .processing import IBSISettings as IBSISettings  # re-export (documented in .processing)

# IBSISettings is importable from here; its documentation lives with napari_medimg.measure.ibsi.processing
__all__ = [
    "EmptyRoiError",
    "IBSI_FAMILIES",
    "compute_ibsi_features",
    "discretise",
    "ibsi_features",
    "interpolate",
    "parse_families",
    "prepare_roi",
    "resegment",
]
