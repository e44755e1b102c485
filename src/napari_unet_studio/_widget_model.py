"""Model panel: decoder picker, U-Net vs one-shot FCN, advanced settings, device picker."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from .core.config import NORMS, ModelConfig, TileConfig, TrainConfig

ARCHITECTURES = (
    (True, "U-Net (skip connections)"),
    (False, "One-shot FCN (no skips)"),
)


def _decoder_choices() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered decoder (imports torch)."""
    from .core.decoders import describe_decoders

    return list(describe_decoders())


def _device_choices() -> list[tuple[str, str]]:
    """``(value, label)`` for the device picker: auto first, then what is available."""
    from .core.device import describe_devices

    infos = describe_devices()
    best = infos[0].label if infos else "CPU"
    return [("auto", f"auto: {best}")] + [(d.name, d.label) for d in infos]


class ModelPanel(QWidget):
    """Choose the architecture and the training/prediction settings.

    The decoder list comes from the registry in :mod:`napari_unet_studio.core.decoders`
    (a new registered decoder shows up here by itself).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        layout.addLayout(form)

        self.decoder = QComboBox()
        self._descriptions: dict[str, str] = {}
        for name, description in _decoder_choices():
            self.decoder.addItem(name, name)
            self.decoder.setItemData(
                self.decoder.count() - 1, description, Qt.ItemDataRole.ToolTipRole
            )
            self._descriptions[name] = description
        default = self.decoder.findData(ModelConfig().decoder)
        self.decoder.setCurrentIndex(max(default, 0))
        self.decoder_help = QLabel()
        self.decoder_help.setWordWrap(True)
        self.decoder_help.setStyleSheet("color: gray; font-size: 11px;")
        self.decoder.currentIndexChanged.connect(self._show_description)
        self._show_description()
        form.addRow("Decoder", self.decoder)
        form.addRow("", self.decoder_help)

        self.architecture = QComboBox()
        for progressive, text in ARCHITECTURES:
            self.architecture.addItem(text, progressive)
        self.architecture.setToolTip(
            "U-Net: the decoder goes back up one level at a time and reuses the encoder's "
            "fine details (skip connections). One-shot FCN: a single big upsampling, no "
            "skips; kept to show why the U-Net gives sharper borders."
        )
        form.addRow("Network", self.architecture)

        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(TrainConfig().steps or 300)
        self.steps.setToolTip("Training steps (each step sees one batch of patches).")
        form.addRow("Steps", self.steps)

        self.device = QComboBox()
        for value, label in _device_choices():
            self.device.addItem(label, value)
        self.device.setToolTip(
            "Where to train and predict; 'auto' takes the best GPU, else the CPU."
        )
        form.addRow("Device", self.device)
        self.device_used = QLabel("Ran on: -")
        self.device_used.setStyleSheet("color: gray; font-size: 11px;")
        form.addRow("", self.device_used)

        self.advanced = QCollapsible("Advanced settings")
        self.advanced.setContentsMargins(0, 0, 0, 0)
        adv = QWidget()
        adv_form = QFormLayout(adv)
        defaults, tdef, tile = ModelConfig(), TrainConfig(), TileConfig()
        self.depth = self._spin(1, 6, defaults.depth, "Number of 2x poolings (levels).")
        self.width = self._spin(2, 256, defaults.width, "Channels of the first level.")
        self.norm = QComboBox()
        self.norm.addItems(list(NORMS))
        self.norm.setCurrentText(defaults.norm)
        self.dims = QComboBox()
        self.dims.addItem("2D (slices)", 2)
        self.dims.addItem("3D (volumes)", 3)
        three_d = self.dims.model().item(1)  # the engine trains 2D models only, for now
        three_d.setEnabled(False)
        three_d.setToolTip("3D training is not available yet; stacks train a 2D model.")
        self.dims.setToolTip("Stacks (Z, Y, X) are trained and predicted slice by slice.")
        self.patch_size = self._spin(8, 1024, tdef.patch_size, "Edge of training patches (px).")
        self.batch_size = self._spin(1, 256, tdef.batch_size, "Patches per step.")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-3)
        self.lr.setValue(tdef.lr)
        self.seed = self._spin(0, 2**31 - 1, tdef.seed, "Random seed (same seed, same result).")
        self.augment = QCheckBox("Augment")
        self.augment.setToolTip("Random flips, 90-degree rotations and intensity changes.")
        self.augment.setChecked(tdef.augment)
        self.cutmix = QDoubleSpinBox()
        self.cutmix.setRange(0.0, 1.0)
        self.cutmix.setSingleStep(0.1)
        self.cutmix.setValue(tdef.cutmix)
        self.cutmix.setToolTip(
            "CutMix (with Augment): chance that a training patch gets a square of another "
            "patch pasted in, labels included. Keeps objects from growing past their "
            "boundaries when your strokes stay away from them. 0 = off."
        )
        self.augment.toggled.connect(self.cutmix.setEnabled)
        self.tile = self._spin(16, 4096, tile.tile, "Tile edge for prediction (px).")
        self.tta = QComboBox()
        for n, text in ((1, "off"), (2, "2x (flip)"), (4, "4x"), (8, "8x (flips + rotations)")):
            self.tta.addItem(text, n)
        self.tta.setToolTip(
            "Predict: average each tile over flips and rotations. Slightly smoother and "
            "more accurate masks, at 2-8x the prediction time."
        )
        self.preview_interval = QDoubleSpinBox()
        self.preview_interval.setRange(3.0, 600.0)
        self.preview_interval.setValue(4.0)
        self.preview_interval.setSuffix(" s")
        self.preview_interval.setToolTip("How often the live prediction is refreshed.")
        for label, widget in (
            ("Depth", self.depth),
            ("Width", self.width),
            ("Normalisation", self.norm),
            ("Dimensions", self.dims),
            ("Patch size", self.patch_size),
            ("Batch size", self.batch_size),
            ("Learning rate", self.lr),
            ("Seed", self.seed),
            ("", self.augment),
            ("Mix patches", self.cutmix),
            ("Prediction tile", self.tile),
            ("Test-time augm.", self.tta),
            ("Preview every", self.preview_interval),
        ):
            adv_form.addRow(label, widget)
        self.advanced.addWidget(adv)
        layout.addWidget(self.advanced)
        self._train_only = [
            self.decoder,
            self.architecture,
            self.steps,
            self.device,
            self.depth,
            self.width,
            self.norm,
            self.dims,
            self.patch_size,
            self.batch_size,
            self.lr,
            self.seed,
            self.augment,
            self.cutmix,
        ]

    @staticmethod
    def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _show_description(self, *_: Any) -> None:
        name = self.decoder.currentData()
        self.decoder_help.setText(self._descriptions.get(name, ""))
        self.decoder.setToolTip(self._descriptions.get(name, ""))

    def set_locked(self, locked: bool) -> None:
        """Disable the settings that must not change while training runs."""
        for widget in self._train_only:
            widget.setEnabled(not locked)
        self.cutmix.setEnabled(not locked and self.augment.isChecked())

    def model_config(self, in_channels: int, num_classes: int) -> ModelConfig:
        """The architecture chosen in the panel for data with these channels/classes."""
        return ModelConfig(
            decoder=str(self.decoder.currentData()),
            depth=self.depth.value(),
            width=self.width.value(),
            norm=self.norm.currentText(),
            dims=int(self.dims.currentData()),
            in_channels=int(in_channels),
            num_classes=int(num_classes),
            progressive=bool(self.architecture.currentData()),
        )

    def train_config(self) -> TrainConfig:
        """Training settings chosen in the panel."""
        return TrainConfig(
            steps=self.steps.value(),
            batch_size=self.batch_size.value(),
            patch_size=self.patch_size.value(),
            lr=float(self.lr.value()),
            seed=self.seed.value(),
            device=self.device_name(),
            augment=self.augment.isChecked(),
            cutmix=float(self.cutmix.value()),
        )

    def tile_config(self) -> TileConfig:
        """Tiled prediction settings."""
        return TileConfig(tile=self.tile.value(), tta=int(self.tta.currentData()))

    def device_name(self) -> str:
        """``"auto"``, ``"cpu"``, ``"cuda:0"``..."""
        return str(self.device.currentData() or "auto")

    def show_config(self, config: ModelConfig) -> None:
        """Show a loaded model's architecture in the pickers."""
        index = self.decoder.findData(config.decoder)
        if index >= 0:
            self.decoder.setCurrentIndex(index)
        self.architecture.setCurrentIndex(0 if config.progressive else 1)
        self.depth.setValue(config.depth)
        self.width.setValue(config.width)
        self.norm.setCurrentText(config.norm)
        self.dims.setCurrentIndex(0 if config.dims == 2 else 1)

    def show_device_used(self, device: str | None) -> None:
        """Say which device actually ran the last job."""
        self.device_used.setText(f"Ran on: {device or '-'}")
