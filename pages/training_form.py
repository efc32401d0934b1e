"""The 'Train a model' form: shown in the sidebar on every page, starts a background training job.

The job runs in its own process (models.job_launch.start_job), so it keeps going when the page reloads
or the browser closes; its progress is on the Training page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from models.config import MODEL_NAMES, default_values
from models.devices import available_cores, available_devices
from store.errors import InputError

TRAINING_PAGE = Path(__file__).resolve().parent / "training.py"
RENDERED_FLAG = "_training_form_in_sidebar"
MODEL_LABELS = {
    "maskrcnn_resnet50_fpn": "ResNet-50 FPN (accurate, GPU)",
    "maskrcnn_resnet50_fpn_v2": "ResNet-50 FPN v2 (more accurate, GPU)",
    "maskrcnn_mobilenet_v2_fpn": "MobileNetV2 FPN (light, CPU ok)",
    "maskrcnn_mobilenet_v3_large_fpn": "MobileNetV3-Large FPN (light, COCO weights exist)",
}


def page_link(page: str, label: str, icon: str, query_params: dict[str, str] | None = None) -> None:
    """A link to another page of the app; plain text where the page is not registered (page run alone)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:
        st.caption(f"{icon} {label} (open the page `{page}` from the navigation)")


def _default_index(options: list[str], wanted: str) -> int:
    return options.index(wanted) if wanted in options else 0


def render_training_form(project_root: str | Path, datasets: list[str], in_sidebar: bool = True) -> None:
    """Draw the form; on submit start a job and link to it on the Training page."""
    if in_sidebar:
        st.session_state[RENDERED_FLAG] = True
    defaults = default_values()
    with st.expander("Train a model", expanded=not in_sidebar, icon=":material/model_training:"):
        if not datasets:
            st.caption("Import a dataset first: training needs a train and a val dataset.")
            return
        with st.form("training_form", border=False):
            name = st.text_input(
                "Model name",
                placeholder="train-<job id>",
                key="tf_name",
                help="Name the trained model gets on the Model quality pages (letters, digits, '_', '-', '.').",
            )
            train = st.selectbox("Train dataset", datasets, index=0, key="tf_train")
            val = st.selectbox(
                "Val dataset",
                datasets,
                index=min(1, len(datasets) - 1),
                key="tf_val",
                help="Picks the best epoch; the best checkpoint's predictions on it become the model.",
            )
            model = st.selectbox(
                "Model",
                list(MODEL_NAMES),
                index=_default_index(list(MODEL_NAMES), "maskrcnn_mobilenet_v2_fpn"),
                format_func=lambda m: MODEL_LABELS.get(m, m),
                key="tf_model",
                help="Mask R-CNN (boxes and masks) with this backbone.",
            )
            left, right = st.columns(2)
            epochs = left.number_input("Epochs", 1, 1000, int(defaults["epochs"]), key="tf_epochs")
            batch_size = right.number_input("Batch", 1, 256, int(defaults["batch_size"]), key="tf_batch")
            lr = left.number_input(
                "Learning rate", 1e-7, 1.0, float(defaults["lr"]), format="%.1e", step=1e-5, key="tf_lr"
            )
            max_side = right.number_input(
                "Image size",
                32,
                4096,
                int(defaults["max_side"]),
                step=32,
                key="tf_max_side",
                help="Longest image side in pixels, for training and for inference.",
            )
            cores = available_cores()
            asked = int(defaults["workers"])
            workers = left.number_input(
                f"Loader workers ({cores} cores here)",
                0,
                64,
                cores if asked < 0 else min(asked, cores),
                key="tf_workers",
                help=f"Data-loader processes decoding images while the model trains. Default: one per "
                f"core this process may use ({cores} here); more only adds contention, and is lowered to it.",
            )
            devices = list(available_devices())
            device = st.radio(
                "Device",
                devices,
                index=_default_index(devices, str(defaults["device"])),
                horizontal=True,
                key="tf_device",
                help="Only the devices this machine has"
                + ("." if len(devices) > 2 else ": no CUDA device here, so auto means the CPU."),
            )
            overfit_images = st.number_input(
                "Overfit on N images (0 = off)",
                0,
                1000,
                0,
                key="tf_overfit",
                help="Train and validate on the first N train images: a quick check that the model can learn.",
            )
            folds = st.number_input(
                "Out-of-fold models (0 = off)",
                0,
                20,
                int(defaults["folds"]),
                key="tf_folds",
                help="K >= 2: train K models, each on K-1 folds of the train dataset, and predict every "
                "train image with the model that never saw it; the union becomes one model NAME-oofK on "
                "the train dataset, whose predictions score the label errors without the bias of a model "
                "that learnt them. Costs about K-1 trainings.",
            )
            tile_size = st.number_input(
                "Tile size (0 = off)",
                0,
                8192,
                int(defaults["tile_size"]),
                step=32,
                key="tf_tile_size",
                help="For small objects in large images: train on crops of this many original pixels and "
                "predict with sliding tiles plus the whole image (overlap and the visibility cut-off: "
                "tile_overlap and tile_min_visibility in the config).",
            )
            pretrained_backbone = st.checkbox(
                "ImageNet backbone", value=bool(defaults["pretrained_backbone"]), key="tf_pretrained"
            )
            weights = st.text_input(
                "Start from weights",
                value=str(defaults["weights"]),
                placeholder="MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 or /path/to/weights.pth",
                key="tf_weights",
                help="Fine-tune from detector weights: a torchvision weights name of the chosen model "
                "(downloaded into the torch hub checkpoints folder; offline, put the file there) or a local "
                ".pth state dict. Box and mask heads are replaced for this project's classes.",
            )
            submitted = st.form_submit_button("Start training", type="primary", width="stretch")
        if submitted:
            overrides = {
                "model": model,
                "epochs": int(epochs),
                "lr": float(lr),
                "batch_size": int(batch_size),
                "max_side": int(max_side),
                "device": device,
                "workers": int(workers),
                "overfit_images": int(overfit_images),
                "pretrained_backbone": bool(pretrained_backbone),
                "weights": weights.strip(),
                "folds": int(folds),
                "tile_size": int(tile_size),
            }
            _start(project_root, name.strip(), train, val, overrides)
        started = st.session_state.get("tf_started")
        if started:
            st.success(f"Job {started} started.")
            if TRAINING_PAGE.is_file():
                page_link("pages/training.py", "Follow it on the Training page", ":material/model_training:")


def _start(project_root: str | Path, name: str, train: str, val: str, overrides: dict[str, Any]) -> None:
    from models.job_launch import prepare_config, start_job

    try:
        config = prepare_config(None, **overrides)
        job_id = start_job(project_root, train, val, config, name or None)
    except InputError as error:
        st.session_state.pop("tf_started", None)
        st.error(str(error))
        return
    st.session_state["tf_started"] = job_id
    st.session_state["training_job"] = job_id
