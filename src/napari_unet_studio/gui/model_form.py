"""Settings forms generated with magicgui from the config dataclasses.

Every field of :class:`~napari_unet_studio.core.config.ModelConfig`,
:class:`~napari_unet_studio.core.config.TrainConfig` and
:class:`~napari_unet_studio.core.config.TileConfig` becomes one magicgui widget: its
type and default come from the dataclass, its tooltip from the class docstring
(numpy "Parameters" section). What a dataclass cannot say (ranges, choice labels,
short labels) is in :data:`HINTS`; which fields are on the first screen is
:data:`BASIC`; everything else goes to "Advanced settings", so a field added to a config
shows up there by itself. The decoder and device choices come from the worker's hello
(``client.info()``) through :meth:`SettingsPanel.set_worker_info`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Any

from magicgui.widgets import Container, FileEdit, Widget, create_widget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from ..core.config import NORMS, ModelConfig, TileConfig, TrainConfig
from .notify import UserProblem
from .widgets import hint_label

__all__ = ["SettingsPanel", "dataclass_widgets", "parameter_help"]

# (config, field) pairs of the first screen, in order; the rest is "advanced"
BASIC = (("model", "decoder"), ("model", "progressive"), ("model", "dims"), ("train", "steps"),
         ("train", "device"), ("train", "start"))
# set from the data or elsewhere in the dock, never shown as a field
HIDDEN = {("model", "in_channels"), ("model", "num_classes"), ("model", "spacing"),
          ("train", "time_limit")}  # spacing: the image layer's scale (gui/volume.py)
# fields that must not change while training runs are all model and train fields
TILE_PREFIX = "tile_"  # TileConfig.batch_size is shown as "tile_batch_size"

START_CHOICES = [
    ("Pretrained weights (shipped)", "pretrained"),
    ("Scratch (random weights)", "scratch"),
    ("A model file...", "file"),
]

HINTS: dict[str, dict[str, Any]] = {
    # ModelConfig
    "decoder": {"label": "Decoder", "widget_type": "ComboBox",
                "choices": [("bilinear", "bilinear")]},
    "progressive": {"label": "Network", "widget_type": "ComboBox",
                    "choices": [("U-Net (skip connections)", True),
                                ("One-shot FCN (no skips)", False)]},
    "depth": {"min": 1, "max": 6},
    "width": {"min": 2, "max": 256},
    "norm": {"label": "Normalisation", "widget_type": "ComboBox", "choices": list(NORMS)},
    "dims": {"label": "Dimensions", "widget_type": "ComboBox",
             "choices": [("2D (slices)", 2), ("3D (volumes)", 3)]},
    # TrainConfig
    "steps": {"min": 1, "max": 1_000_000},
    "batch_size": {"min": 1, "max": 256},
    "patch_size": {"min": 8, "max": 1024},
    "lr": {"label": "Learning rate", "min": 1e-5, "max": 1.0, "step": 1e-3, "decimals": 5},
    "weight_decay": {"min": 0.0, "max": 1.0, "step": 1e-4, "decimals": 5},
    "dice_weight": {"label": "Dice weight", "min": 0.0, "max": 10.0, "step": 0.1},
    "entropy_weight": {"label": "Entropy weight (unpainted)", "min": 0.0, "max": 10.0,
                       "step": 0.1},
    "entropy_ramp": {"label": "Entropy ramp (run fraction)", "min": 0.0, "max": 1.0,
                     "step": 0.1},
    "seed": {"min": 0, "max": 2**31 - 1},
    "device": {"label": "Device", "widget_type": "ComboBox", "choices": [("auto", "auto")]},
    "amp": {"label": "Mixed precision (CUDA)"},
    "augment": {"label": "Augment"},
    "cutmix": {"label": "Mix patches", "min": 0.0, "max": 1.0, "step": 0.1},
    "start": {"label": "Start from", "widget_type": "ComboBox", "choices": START_CHOICES},
    "start_lr": {"label": "Start learning rate", "min": 1e-6, "max": 1.0, "step": 1e-4,
                 "decimals": 6},
    # TileConfig
    "tile": {"label": "Prediction tile", "min": 16, "max": 4096},
    "overlap": {"label": "Tile overlap", "min": 0.0, "max": 0.45, "step": 0.05},
    "tile_batch_size": {"label": "Tiles per batch", "min": 1, "max": 256},
    "tta": {"label": "Test-time augm.", "widget_type": "ComboBox",
            "choices": [("off", 1), ("2x (flip)", 2), ("4x", 4), ("8x (flips + rotations)", 8)]},
    "superpixels": {"label": "Superpixel vote", "widget_type": "ComboBox",
                    "choices": [("auto (colour images)", "auto"), ("on", "on"), ("off", "off")]},
    "edges": {"label": "Snap to edges", "widget_type": "ComboBox",
              "choices": [("auto (gray, two classes)", "auto"), ("on (two classes)", "on"),
                          ("off", "off")]},
}

EXTRA_HELP = {
    "device": "Where to train and predict; 'auto' takes the best GPU, else the CPU.",
    "start": "Start training from the shipped pretrained weights, from random weights, "
             "or from a model file you saved before.",
    "progressive": "U-Net: the decoder goes back up one level at a time and reuses the "
                   "encoder's fine details (skip connections). One-shot FCN: a single big "
                   "upsampling, no skips; kept to show why the U-Net gives sharper borders.",
}


def parameter_help(cls: type) -> dict[str, str]:
    """Field descriptions from the numpy-style "Parameters" section of ``cls``'s docstring."""
    doc = typing.cast(str, cls.__doc__ or "")
    lines = doc.expandtabs().splitlines()
    out: dict[str, str] = {}
    in_params, name, indent = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped == "Parameters":
            in_params = True
            continue
        if not in_params or set(stripped) == {"-"}:
            continue
        match = re.match(r"^(\s*)(\w+)\s*:", line)
        if match and (indent is None or len(match.group(1)) <= indent):
            indent = len(match.group(1))
            name = match.group(2)
            out[name] = ""
        elif name and stripped:
            out[name] = (out[name] + " " + stripped).strip()
        elif stripped == "" and name and out.get(name):
            continue
    return {k: v.replace("``", "'") for k, v in out.items()}


def _plain_type(annotation: Any) -> Any:
    """``int | None`` -> ``int`` (the GUI always gives a value)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args and type(None) in typing.get_args(annotation):
        return args[0]
    return annotation


def dataclass_widgets(cls: type, skip: set[str] = frozenset(),
                      rename: dict[str, str] | None = None) -> dict[str, Widget]:
    """One magicgui widget per field of the dataclass ``cls`` (in field order).

    Parameters
    ----------
    cls : type
        A config dataclass.
    skip : set of str
        Field names to leave out.
    rename : dict, optional
        ``field name -> widget name`` (when two configs share a field name).

    Returns
    -------
    dict
        ``widget name -> widget``; the value, type and tooltip come from the dataclass,
        ranges and labels from :data:`HINTS`.
    """
    rename = rename or {}
    hints = typing.get_type_hints(cls)
    helps = parameter_help(cls)
    out: dict[str, Widget] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        key = rename.get(f.name, f.name)
        options = dict(HINTS.get(key, {}))
        label = options.pop("label", key.replace("_", " ").capitalize())
        widget_type = options.pop("widget_type", None)
        decimals = options.pop("decimals", None)
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is None and key not in HINTS:  # "not set" has no widget value
            continue
        if decimals is None and isinstance(default, float) and 0 < abs(default) < 0.01:
            decimals = 2 - math.floor(math.log10(abs(default)))  # 3e-4 -> 6 decimals
        try:
            widget = create_widget(
                value=default, annotation=_plain_type(hints[f.name]), name=key, label=label,
                widget_type=widget_type, options=options,
            )
        except (ValueError, TypeError):  # a field type magicgui cannot show: leave it out
            continue
        if decimals is not None:
            widget.native.setDecimals(int(decimals))
            widget.value = default
        widget.tooltip = EXTRA_HELP.get(key) or helps.get(f.name, "")
        out[key] = widget
    return out


class SettingsPanel(QWidget):
    """The model, training and prediction settings: basic fields and an advanced fold.

    ``panel[name]`` is the magicgui widget of a field (``panel["steps"].value = 4``).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        model_w = dataclass_widgets(ModelConfig, {n for c, n in HIDDEN if c == "model"})
        train_w = dataclass_widgets(TrainConfig, {n for c, n in HIDDEN if c == "train"})
        tile_w = dataclass_widgets(TileConfig, rename={"batch_size": TILE_PREFIX + "batch_size"})
        self._model_keys = list(model_w)
        self._train_keys = list(train_w)
        self._tile_keys = list(tile_w)
        self.fields: dict[str, Widget] = {**model_w, **train_w, **tile_w}
        self.fields["preview_interval"] = create_widget(
            value=4.0, annotation=float, name="preview_interval", label="Preview every",
            options={"min": 3.0, "max": 600.0, "step": 1.0},
        )
        self.fields["preview_interval"].tooltip = "How often the live prediction is refreshed (s)."
        self.fields["preview_interval"].native.setSuffix(" s")
        self.start_file: FileEdit = FileEdit(mode="r", filter="*.pt", name="start_file",
                                             label="Model file")
        self.start_file.tooltip = "The saved model (.pt) whose weights training starts from."
        basic_keys = [n for _, n in BASIC if n in self.fields]
        self.decoder_help = hint_label()
        self.device_used = hint_label("Ran on: -")
        basic = Container(widgets=[self.fields[k] for k in basic_keys] + [self.start_file])
        advanced_keys = [k for k in self.fields if k not in basic_keys]
        advanced = Container(widgets=[self.fields[k] for k in advanced_keys])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for container in (basic, advanced):
            container.native.layout().setContentsMargins(0, 0, 0, 0)
        layout.addWidget(basic.native)
        self.dims_help = hint_label()  # the 2D/3D recommendation for the data (gui/volume.py)
        layout.addWidget(self.dims_help)
        layout.addWidget(self.decoder_help)
        layout.addWidget(self.device_used)
        self.advanced = QCollapsible("Advanced settings")
        self.advanced.setContentsMargins(0, 0, 0, 0)
        self.advanced.addWidget(advanced.native)
        layout.addWidget(self.advanced)
        self._basic, self._advanced_form = basic, advanced
        self._descriptions: dict[str, str] = {}
        self._locked = False
        if "dims" in self.fields:
            self["dims"].changed.connect(self._dims_changed)
        self["decoder"].changed.connect(self._show_description)
        if "augment" in self.fields and "cutmix" in self.fields:
            self["augment"].changed.connect(lambda *_: self._follow_rules())
        if "start" in self.fields:
            self["start"].changed.connect(lambda *_: self._follow_rules())
        self._follow_rules()

    def __getitem__(self, name: str) -> Widget:
        return self.fields[name]

    # ------------------------------------------------------------------ worker info
    def set_worker_info(self, info: dict) -> None:
        """Fill the decoder and device pickers from the worker's hello."""
        decoders = [(str(n), str(d)) for n, d in info.get("decoders") or []]
        if decoders:
            combo = self["decoder"]
            current = combo.value
            _replace_choices(combo, [(n, n) for n, _ in decoders])
            self._descriptions = dict(decoders)
            for i, (_, description) in enumerate(decoders):
                combo.native.setItemData(i, description, Qt.ItemDataRole.ToolTipRole)
            names = [n for n, _ in decoders]
            combo.value = current if current in names else (
                ModelConfig().decoder if ModelConfig().decoder in names else names[0])
            self._show_description()
        devices = [(str(v), str(label)) for v, label in info.get("devices") or []]
        if devices:
            combo = self["device"]
            current = combo.value
            choices = [(label, value) for value, label in devices]
            if "auto" not in [v for v, _ in devices]:
                best = devices[0][1]
                choices.insert(0, (f"auto: {best}", "auto"))
            _replace_choices(combo, choices)
            combo.value = current if current in [v for _, v in choices] else "auto"
        if "start" in self.fields and info.get("pretrained") is False:
            combo = self["start"]
            keep = combo.value
            _replace_choices(combo, [c for c in START_CHOICES if c[1] != "pretrained"])
            combo.value = keep if keep != "pretrained" else "scratch"

    def decoders(self) -> list[str]:
        """Decoder names listed in the picker."""
        return [self["decoder"].native.itemData(i) for i in range(self["decoder"].native.count())]

    def _show_description(self, *_: Any) -> None:
        text = self._descriptions.get(self["decoder"].value, "")
        self.decoder_help.setText(text)
        self["decoder"].tooltip = text

    def show_dims_advice(self, text: str) -> None:
        """Show the 2D/3D recommendation for the data and why (under the choice)."""
        self.dims_help.setText(text)
        self["dims"].tooltip = text or self["dims"].tooltip

    def _dims_changed(self, dims: int) -> None:
        """3D trains on smaller patches and a narrower network on the CPU (VOLUME_CPU);
        sizes the user changed are kept, untouched defaults follow the choice."""
        from .volume import volume_sizes

        two_d = {"patch_size": TrainConfig().patch_size, "batch_size": TrainConfig().batch_size,
                 "width": ModelConfig().width}
        three_d = volume_sizes()
        old, new = (two_d, three_d) if int(dims) == 3 else (three_d, two_d)
        for key, value in new.items():
            if key in self.fields and self.fields[key].value == old[key]:
                self.fields[key].value = value

    def _follow_rules(self) -> None:
        """Mix patches needs Augment; the model file row shows with 'A model file...'."""
        if "cutmix" in self.fields and "augment" in self.fields:
            self["cutmix"].enabled = not self._locked and bool(self["augment"].value)
        choose_file = "start" in self.fields and self["start"].value == "file"
        self.start_file.visible = choose_file
        self.start_file.enabled = not self._locked

    # ------------------------------------------------------------------- locking
    def set_locked(self, locked: bool) -> None:
        """Disable the model and training settings while training runs."""
        self._locked = bool(locked)
        for key in self._model_keys + self._train_keys:
            self.fields[key].enabled = not locked
        self._follow_rules()

    # ------------------------------------------------------------------- configs
    def _values(self, keys: list[str], rename: dict[str, str] | None = None) -> dict[str, Any]:
        rename = rename or {}
        return {rename.get(k, k): self.fields[k].value for k in keys}

    def model_config(self, in_channels: int, num_classes: int) -> dict:
        """``ModelConfig.to_dict()`` of the chosen architecture for this data."""
        values = self._values(self._model_keys)
        values.update(in_channels=int(in_channels), num_classes=int(num_classes))
        return _build(ModelConfig, values).to_dict()

    def train_config(self) -> dict:
        """``TrainConfig.to_dict()`` of the chosen training settings."""
        values = self._values(self._train_keys)
        if values.get("start") == "file":
            path = str(self.start_file.value or "").strip()
            if not path or path == ".":
                raise UserProblem(
                    "'Start from' is set to a model file, but no file is chosen. Choose the "
                    "model file (.pt), or start from the pretrained weights or from scratch."
                )
            values["start"] = path
        return _build(TrainConfig, values).to_dict()

    def tile_config(self) -> dict:
        """``TileConfig.to_dict()`` of the prediction settings."""
        values = self._values(self._tile_keys, {TILE_PREFIX + "batch_size": "batch_size"})
        return _build(TileConfig, values).to_dict()

    def device_name(self) -> str:
        """``"auto"``, ``"cpu"``, ``"cuda:0"``..."""
        return str(self["device"].value or "auto")

    def preview_interval(self) -> float:
        """Seconds between live previews."""
        return float(self["preview_interval"].value)

    def show_config(self, config: dict) -> None:
        """Show a model's architecture (``ModelConfig.to_dict()``) in the pickers."""
        for key in self._model_keys:
            if key not in config:
                continue
            widget = self.fields[key]
            value = config[key]
            if key == "decoder" and value not in self.decoders():
                _replace_choices(widget, [*[(n, n) for n in self.decoders()], (value, value)])
            try:
                widget.value = value
            except (ValueError, TypeError):
                continue

    def show_device_used(self, device: str | None) -> None:
        """Say which device actually ran the last job."""
        self.device_used.setText(f"Ran on: {device or '-'}")


def _replace_choices(combo: Any, choices: list[tuple[str, Any]]) -> None:
    """Set a magicgui ComboBox's choices in exactly this order.

    (Assigning ``choices`` keeps the items that stay, in their old places.)
    """
    combo.choices = [("...", "__unet_studio_placeholder__")]
    combo.choices = choices


def _build(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)``, its refusal as a :class:`UserProblem` in plain words."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserProblem(f"A setting is not valid: {exc}. Change it in the settings.") from exc
