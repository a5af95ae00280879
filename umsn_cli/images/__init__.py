"""Read and write images without losing what the restoration should keep.

Photos arrive in every shape: rotated by an EXIF tag, greyscale, with alpha, at 16 bits,
in CMYK, as palettes or animations, truncated, or not images at all. Reading turns each
into one float RGB array in [0, 1] plus what is needed to write the result back the way
the source was (:class:`LoadedImage`); every failure becomes an :class:`ImageError`
naming the file, never a traceback from a decoder.

Pillow does most of the work. It keeps only 8 bits of 16-bit colour PNGs and TIFFs, so
pypng and tifffile decode and encode those. Writes go through a temporary file and
``os.replace`` so that an interrupted run never leaves half an image behind.

The package is split by what each part owns: :mod:`~umsn_cli.images.metadata` (what an
image is besides its pixels, and which types keep what), :mod:`~umsn_cli.images.reading`
and :mod:`~umsn_cli.images.writing`.
"""

from umsn_cli.images.metadata import LoadedImage, lost_in, normalise_ext, output_suffix
from umsn_cli.images.reading import from_array, from_pil, read_image
from umsn_cli.images.writing import (
    atomic_write,
    quantise,
    save_label_png,
    save_rgb8,
    to_array,
    write_image,
)

__all__ = [
    "LoadedImage",
    "atomic_write",
    "from_array",
    "from_pil",
    "lost_in",
    "normalise_ext",
    "output_suffix",
    "quantise",
    "read_image",
    "save_label_png",
    "save_rgb8",
    "to_array",
    "write_image",
]
