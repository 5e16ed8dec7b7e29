"""IBSI 1 compliance on the reference phantoms (../shared/data/ibsi): every reference tag within tolerance.

The IBSI rule: round the computed value to 3 significant figures (or to the significant figures the reference
value itself carries, when it has more, e.g. ``max_int_init_img`` = 3065 or a voxel count of 125256), then it
must lie within the tolerance of the reference value.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from napari_medimg.io.nifti import read_nifti
from napari_medimg.measure.ibsi import IBSISettings, compute_ibsi_features, ibsi_features

pytestmark = pytest.mark.shared_data


def significant_digits(reference: float) -> int:
    """Significant figures written in a reference value (at least 3)."""
    text = f"{reference:.10g}".lstrip("-").replace(".", "").lstrip("0").split("e")[0]
    return max(3, len(text.rstrip("0")) if "." not in f"{reference:.10g}" else len(text))


def rounded(value: float, digits: int) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, -int(math.floor(math.log10(abs(value)))) + digits - 1)


def compliance(row: dict, reference: pd.DataFrame) -> tuple[list[str], list[tuple]]:
    """(tags within tolerance, failures) over the tags that have a reference value."""
    passed, failed = [], []
    for tag, value, tolerance in reference[["tag", "reference value", "tolerance"]].itertuples(index=False):
        if pd.isna(value):
            continue
        computed = row.get(tag, float("nan"))
        if abs(rounded(computed, significant_digits(value)) - value) <= tolerance + 1e-12:
            passed.append(tag)
        else:
            failed.append((tag, computed, value, tolerance))
    return passed, failed


@lru_cache(maxsize=2)
def phantom(shared: str, name: str):
    base = f"{shared}/ibsi/{name}/nifti"
    return read_nifti(f"{base}/image/phantom.nii.gz"), read_nifti(f"{base}/mask/mask.nii.gz")


def reference_table(shared_data, name: str, csv: str) -> pd.DataFrame:
    return pd.read_csv(shared_data / "ibsi" / name / csv, sep=";")


def test_rounding_rule():
    assert (
        significant_digits(0.0411) == 3 and significant_digits(3065) == 4 and significant_digits(125256) == 6
    )
    assert significant_digits(556) == 3 and significant_digits(1200) == 3 and significant_digits(-0.355) == 3
    assert rounded(0.041149, 3) == pytest.approx(0.0411) and rounded(3064.6, 4) == 3065


def test_digital_phantom_every_reference_tag(shared_data):
    image, mask = phantom(str(shared_data), "digital_phantom")
    row = ibsi_features(image, mask)
    reference = reference_table(shared_data, "digital_phantom", "ibsi_1_reference_values.csv")
    passed, failed = compliance(row, reference)
    assert not failed, failed
    assert len(passed) == reference["reference value"].notna().sum() == 482
    # tags without a reference value are computed too (oriented box, minimum-volume ellipsoid, IVH area)
    for tag in ("morph_vol_dens_ombb", "morph_area_dens_mvee", "ivh_auc"):
        assert np.isfinite(row[tag])


def test_digital_phantom_table_and_label_values(shared_data):
    image, mask = phantom(str(shared_data), "digital_phantom")
    labels = np.asarray(mask.array).astype(np.int32) * 7
    table = compute_ibsi_features(labels, image.array, image.spacing, families="morph,stat,cm")
    assert table["label"].tolist() == [7]
    assert table.loc[0, "morph_volume"] == pytest.approx(556, abs=4)
    assert table.loc[0, "stat_kurt"] == pytest.approx(-0.355, abs=5e-4)
    assert "cm_joint_max_3D_avg" in table and "rlm_sre_3D_avg" not in table and "ngl_lde_3D" not in table


CONFIGS = {
    "a": IBSISettings(by_slice=True, reseg_range=(-500, 400), bin_width=25),
    "b": IBSISettings(
        by_slice=True, resample_mm=2.0, interpolation="linear", reseg_range=(-500, 400), bin_count=32
    ),
}


@pytest.mark.parametrize("config", ["a", "b"])
def test_ct_phantom_configurations(shared_data, config):
    image, mask = phantom(str(shared_data), "ct_phantom")
    row = ibsi_features(image, mask, settings=CONFIGS[config])
    reference = reference_table(shared_data, "ct_phantom", f"ibsi_1_reference_values_config_{config}.csv")
    passed, failed = compliance(row, reference)
    rate = len(passed) / (len(passed) + len(failed))
    assert rate >= 0.95, failed
    # measured in this session: every one of the 406 reference tags of A and of B is within tolerance
    assert not failed, failed
    # by slice: 2D and 2.5D texture only
    assert "cm_joint_max_2_5D_comb" in row and "cm_joint_max_3D_avg" not in row and "szm_sze_3D" not in row


# The 3D configurations C, D and E of the IBSI 1 manual (2 mm isotropic).  ../shared/data has no reference
# table for them: these reference values and tolerances are a selection, spanning every family, transcribed
# from the benchmark tables of the IBSI 1 reference manual (theibsi/ibsi-doc, docs/03_Image_features.rst).
# The full tables were checked in development: C 239/241, D 216/221 and E 268/270 tags within tolerance
# (docs/features.md; E's full table as transcribed by z-rad, medical-physics-usz/z-rad, tests/data).
CONFIGS_3D = {
    "c": IBSISettings(resample_mm=2.0, reseg_range=(-1000, 400), bin_width=25, ivh_bin_width=2.5),
    "d": IBSISettings(resample_mm=2.0, reseg_sigma=3.0, bin_count=32),
    "e": IBSISettings(
        resample_mm=2.0,
        interpolation="cubic",
        reseg_range=(-1000, 400),
        reseg_sigma=3.0,
        bin_count=32,
        ivh_bin_count=1000,
    ),
}
REFERENCE_3D = {
    "c": {
        "img_dim_z_interp_img": (90, 0), "int_mask_vox_count_reseg_roi": (45981, 700),
        "morph_volume": (367000, 6000), "morph_sphericity": (0.723, 0.003), "morph_moran_i": (0.0824, 0.0003),
        "morph_geary_c": (0.846, 0.001), "loc_peak_glob": (180, 5), "stat_kurt": (3.53, 0.23),
        "ih_entropy": (3.73, 0.04), "ih_max_grad_g": (41, 0), "ivh_i10": (88.8, 0.2), "ivh_v90": (0.000152, 2e-05),
        "cm_joint_max_3D_avg": (0.111, 0.002), "cm_info_corr1_3D_comb": (-0.228, 0.001),
        "rlm_rlnu_3D_comb": (234000, 6000), "szm_zs_entr_3D": (7, 0.01), "dzm_zd_var_3D": (4.6, 0.06),
        "ngt_coarseness_3D": (0.000216, 4e-06), "ngl_dc_energy_3D": (0.00789, 0.00011),
    },
    "d": {
        "int_mask_min_int_reseg_roi": (-724, 12), "morph_com": (64.9, 2.8), "morph_integ_int": (-8640000, 1560000),
        "morph_moran_i": (0.0622, 0.0013), "loc_peak_loc": (201, 10), "stat_mean": (-23.5, 3.9),
        "stat_p10": (-304, 20), "ih_mode": (20, 0.4), "ivh_i90": (-303, 20), "cm_corr_3D_avg": (0.798, 0.005),
        "rlm_glnu_3D_comb": (42800, 200), "szm_lzhge_3D": (41400000, 300000), "dzm_sde_3D": (0.579, 0.004),
        "ngt_busyness_3D": (5.14, 0.14), "ngl_hde_3D": (223, 5),
    },
    "e": {
        "img_dim_z_interp_img": (90, 0), "int_mask_vox_count_reseg_roi": (44484, 800),
        "int_mask_min_int_reseg_roi": (-743, 13), "morph_volume": (367000, 6000), "morph_av": (0.0934, 0.0007),
        "morph_com": (68.5, 2.1), "morph_moran_i": (0.0596, 0.0014), "morph_geary_c": (0.853, 0.001),
        "loc_peak_loc": (181, 13), "stat_mean": (-22.6, 4.1), "stat_kurt": (4.44, 0.33),
        "ih_entropy": (3.22, 0.02), "ih_max_grad": (6010, 130), "ivh_v10": (0.975, 0.002), "ivh_i10": (770, 5),
        "cm_joint_max_3D_avg": (0.153, 0.003), "cm_info_corr1_3D_comb": (-0.175, 0.003),
        "rlm_sre_3D_avg": (0.776, 0.001), "rlm_glnu_3D_comb": (51900, 200), "szm_zs_entr_3D": (6.57, 0.01),
        "szm_lzhge_3D": (33600000, 300000), "dzm_sde_3D": (0.527, 0.004), "dzm_zd_var_3D": (5.56, 0.05),
        "ngt_coarseness_3D": (0.000188, 4e-06), "ngt_busyness_3D": (4.65, 0.1), "ngl_hde_3D": (134, 3),
        "ngl_dc_energy_3D": (0.0106, 0.0001),
    },
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("config", ["c", "d", "e"])
def test_ct_phantom_3d_configurations(shared_data, config):
    image, mask = phantom(str(shared_data), "ct_phantom")
    row = ibsi_features(image, mask, settings=CONFIGS_3D[config])
    reference = pd.DataFrame(
        [(value, tolerance, tag) for tag, (value, tolerance) in REFERENCE_3D[config].items()],
        columns=["reference value", "tolerance", "tag"],
    )
    passed, failed = compliance(row, reference)
    assert not failed, failed
    assert row["vox_dim_z_interp_img"] == 2.0 and "cm_joint_max_3D_comb" in row and "szm_sze_2D" in row
