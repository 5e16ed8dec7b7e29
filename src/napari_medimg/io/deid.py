"""De-identification of DICOM datasets: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

What is applied, to the top level **and to every item of every sequence, at any depth**:

* the profile's action for each attribute of PS3.15 Table E.1-1: ``X`` remove, ``Z`` empty, ``D`` replace with
  a dummy value of the attribute's VR, ``U`` replace the UID through the export's UID map.  Where the table
  allows a choice (``X/Z``, ``X/D``, ``X/Z/D``) the attribute is removed; ``Z/D`` is emptied; ``X/Z/U*``
  sequences (ReferencedImageSequence, SourceImageSequence) are kept and their content de-identified, so
  the references stay valid (remapped, never blanked);
* every private attribute is removed; curves (50xx) and overlay data/comments (60xx,3000/4000) are removed;
* every other UID that is not a standard DICOM UID (``1.2.840.10008.*``) nor a class/syntax/coding-scheme
  UID is remapped through the same map, so one original UID gets one replacement in the whole export and
  references between files and series stay consistent;
* ``PatientIdentityRemoved = YES``, ``DeidentificationMethod`` and the code ``113100`` are added.

The attribute table is the one the maintained ``dicom-anonymizer`` package ships (transcribed from the current
Table E.1-1, :data:`TAG_TABLE`); its own applier is not used because it does not recurse with the profile
into sequence items, draws nested UIDs from a global table instead of the export's, and empties reference
sequences.  Limits (see ``docs/reliability.md``): pixel data is not inspected: files flagged
``BurnedInAnnotation = YES`` are refused unless explicitly allowed; free text in kept attributes that the
profile keeps (e.g. ImageComments is removed, but a manufacturer's kept code meanings are not scanned) and
faces in 3D reconstructions are out of scope.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import generate_uid

__all__ = [
    "deidentify_dataset",
    "basic_profile_tags",
    "profile_action",
    "check_burned_in",
    "BurnedInAnnotationError",
    "DEIDENTIFICATION_METHOD",
    "TAG_TABLE",
    "DUMMY_VALUES",
]

TAG_TABLE = "dicomfields_2026c"
DEIDENTIFICATION_METHOD = "PS3.15 Annex E Basic Profile (napari-medimg)"

#: the dummy value written for an attribute with action D, by VR (numbers 0, binary two zero bytes)
DUMMY_VALUES = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMIZED",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "UR": "",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}

_ACTIONS = {
    "X_TAGS": "X",
    "X_Z_TAGS": "X",
    "X_D_TAGS": "X",
    "X_Z_D_TAGS": "X",
    "Z_TAGS": "Z",
    "Z_D_TAGS": "Z",
    "D_TAGS": "D",
    "U_TAGS": "U",
    "X_Z_U_STAR_TAGS": "K",  # keep the sequence, de-identify its items (their UIDs are remapped)
}
_KEEP_UIDS = {
    "SOPClassUID",
    "ReferencedSOPClassUID",
    "ReferencedSOPClassUIDInFile",
    "MediaStorageSOPClassUID",
    "TransferSyntaxUID",
    "ReferencedTransferSyntaxUIDInFile",
    "CodingSchemeUID",
    "ContextUID",
    "MappingResourceUID",
    "ContextGroupExtensionCreatorUID",
    "ImplementationClassUID",
    "PrivateInformationCreatorUID",
    "SpecificCharacterSet",
}
_FILE_META_REMOVE = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)


class BurnedInAnnotationError(ValueError):
    """A file declares identifying text burned into its pixels (``BurnedInAnnotation = YES``)."""


def basic_profile_tags() -> dict[str, list]:
    """The Annex E table in use: category (``X_TAGS``, ``D_TAGS`` …) → list of tags.

    Returns
    -------
    dict
        Category name → list of ``(group, element)`` tuples, or ``(group, element, group_mask,
        element_mask)`` for repeating groups.
    """
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    return dicom_anonymization_database_selector(TAG_TABLE)


def _build_rules() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    exact, masked = {}, []
    for category, action in _ACTIONS.items():
        for entry in basic_profile_tags().get(category, []):
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                masked.append((*entry, action))
    return exact, masked


_RULES: tuple | None = None


def profile_action(tag: int) -> str | None:
    """The basic-profile action applied to ``tag``: ``"X"``, ``"Z"``, ``"D"``, ``"U"``, ``"K"`` or None.

    ``K`` keeps a reference sequence and de-identifies its items; None keeps the attribute (a UID is still
    remapped when it is not a standard one).

    Parameters
    ----------
    tag : int
        The attribute tag, e.g. ``0x00100010``.

    Returns
    -------
    str or None
    """
    global _RULES
    if _RULES is None:
        _RULES = _build_rules()
    exact, masked = _RULES
    tag = int(tag)
    if tag in exact:
        return exact[tag]
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, group_mask, element_mask, action in masked:
        if group & group_mask == g and element & element_mask == e:
            return action
    return None


def check_burned_in(dataset: Dataset, where: str = "", *, allow: bool = False) -> None:
    """Refuse a dataset that declares burned-in annotation, unless ``allow``.

    Parameters
    ----------
    dataset : pydicom.Dataset
    where : str, optional
        Named in the message (e.g. the file).
    allow : bool, optional
        Accept it anyway (the flag stays ``YES`` in the output, so readers know).

    Raises
    ------
    BurnedInAnnotationError
    """
    if allow:
        return
    if str(dataset.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        raise BurnedInAnnotationError(
            f"{where or 'the image'} declares BurnedInAnnotation = YES: identifying text may be part of "
            "the pixels, which de-identification does not change; pass allow_burned_in=True "
            "(--allow-burned-in) to export it anyway"
        )


def _new_uid(value: str, uid_map: MutableMapping) -> str:
    value = str(value).strip("\0 ")
    if value not in uid_map:
        uid_map[value] = generate_uid()
    return uid_map[value]


def _remap(element, uid_map: MutableMapping) -> None:
    if element.value in (None, ""):
        return
    if isinstance(element.value, (MultiValue, list, tuple)):
        element.value = [_new_uid(v, uid_map) for v in element.value]
    else:
        element.value = _new_uid(element.value, uid_map)


def _standard_uid(value) -> bool:
    values = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    return all(str(v).startswith("1.2.840.10008.") for v in values)


def _dummy(element) -> object:
    if element.VR in DUMMY_VALUES:
        return DUMMY_VALUES[element.VR]
    if element.VR in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"):
        return 0
    if element.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b"\0\0"
    return None


def _apply(dataset: Dataset, uid_map: MutableMapping) -> None:
    for element in list(dataset):
        tag = element.tag
        if BaseTag(tag).is_private:
            del dataset[tag]
            continue
        action = profile_action(tag)
        if action == "X":
            del dataset[tag]
        elif element.VR == "SQ":
            if action in ("Z", "D"):
                element.value = []
            else:
                for item in element.value:
                    _apply(item, uid_map)
        elif action == "Z":
            element.value = None
        elif action == "D":
            if element.VR == "UI":
                _remap(element, uid_map)
            elif element.value not in (None, "", b""):
                element.value = _dummy(element)
        elif element.VR == "UI" and (
            action == "U" or (element.keyword not in _KEEP_UIDS and not _standard_uid(element.value))
        ):
            _remap(element, uid_map)


def deidentify_dataset(
    dataset: Dataset, uid_map: MutableMapping, *, allow_burned_in: bool = False
) -> Dataset:
    """Apply the basic profile to ``dataset`` in place, recursively; UIDs go through ``uid_map``.

    Parameters
    ----------
    dataset : pydicom.Dataset
        A dataset (with or without ``file_meta``).
    uid_map : mutable mapping
        Original UID → replacement, shared by every dataset of one export (filled as needed).
    allow_burned_in : bool, optional
        De-identify a dataset flagged ``BurnedInAnnotation = YES`` instead of refusing it.

    Returns
    -------
    pydicom.Dataset
        ``dataset``.

    Raises
    ------
    BurnedInAnnotationError
        When the dataset declares burned-in annotation and ``allow_burned_in`` is false.

    Example
    -------
    >>> uid_map = {}
    >>> for ds in datasets:  # doctest: +SKIP
    ...     deidentify_dataset(ds, uid_map)
    """
    check_burned_in(dataset, allow=allow_burned_in)
    _apply(dataset, uid_map)
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        for tag in _FILE_META_REMOVE:
            if tag in meta:
                del meta[tag]
        if "SOPInstanceUID" in dataset:
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    dataset.DeidentificationMethodCodeSequence = pydicom.Sequence([code])
    return dataset
