"""CNN classifiers for 2D and 3D medical images (PyTorch, CPU-first; no napari or Qt imports).

* :mod:`.data` — MedMNIST-style ``.npz`` files, folders of images with a labels CSV, object patches and
  slices cut from volumes with their classes, stratified splits, normalisation;
* :mod:`.patches` — patches of a fixed size in mm around labelled objects (the same for training and
  prediction);
* :mod:`.models` — ResNet-style 2D/3D networks with configurable width, depth and dropout;
* :mod:`.train` — AdamW, warm-up + cosine schedule, class balancing, augmentation, early stopping on
  validation AUC, best checkpoint, time budget, seeded;
* :mod:`.metrics` — accuracy, balanced accuracy, precision, recall, F1, ROC-AUC, confusion matrix, ROC plot;
* :mod:`.files` — safetensors + JSON model folders, checked on load;
* :mod:`.explain` — Grad-CAM; :mod:`.predict` — per image, per slice and per object predictions.
"""
