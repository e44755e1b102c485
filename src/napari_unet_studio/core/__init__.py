"""Pure torch/numpy core of napari-unet-studio (no Qt, no napari).

Modules are imported explicitly (``from napari_unet_studio.core import model``); this
package file imports nothing heavy so that ``core.config`` stays torch-free.
"""
