"""Volatility 3 layer for Xen save images (``xl save`` files, ``virsh save`` files of libxl
domains, libxl v2 and libxc v2/v3 streams).

Load it with ``vol -p contrib/volatility3 -f guest.save PLUGIN``: Volatility imports every module
in a plugin directory, so ``XenSaveStacker`` joins the stackers its ``LayerStacker`` automagic
tries on the input file (as its own ``Elf64Stacker``, ``LimeStacker`` and ``QemuStacker`` do),
and the layer appears under the Intel/Linux/Windows layers without conversion. Copying both
``.py`` files into ``volatility3/framework/layers/`` works too.

The layer is a ``SegmentedLayer``: guest-physical address ``pfn * 4096`` maps to the file offset
of the page body that a restore would leave in that frame (``xen_save_stream`` builds the index
in one pass over the headers and pfn arrays; page bodies are never read until Volatility asks).
Frames without data (XTAB, BROKEN, never sent) are holes. XALLOC frames (populated without data;
only Xen 4.2-4.5 senders wrote them) are holes here too, because a ``SegmentedLayer`` maps only
onto bytes of its base layer.
"""

import logging
from typing import Optional

from volatility3.framework import constants, exceptions, interfaces
from volatility3.framework.layers import segmented

from . import xen_save_stream as xss

vollog = logging.getLogger(__name__)


class XenSaveFormatException(exceptions.LayerException):
    """The base layer is not a readable Xen save image."""


def _index_of(base_layer: interfaces.layers.DataLayerInterface) -> xss.SaveIndex:
    size = base_layer.maximum_address + 1

    def read(offset: int, length: int) -> bytes:
        return base_layer.read(offset, length)

    try:
        return xss.parse(read, size)
    except xss.XenSaveError as e:
        raise XenSaveFormatException(base_layer.name, str(e)) from e
    except exceptions.InvalidAddressException as e:
        raise XenSaveFormatException(base_layer.name, f"unreadable base layer: {e}") from e


class XenSaveLayer(segmented.SegmentedLayer):
    """Guest-physical memory of a Xen save image (pfn * 4096 -> page body in the file)."""

    def _load_segments(self) -> None:
        base_layer = self.context.layers[self._base_layer]
        idx = _index_of(base_layer)
        segments = [
            (pfn << xss.PAGE_SHIFT, offset, n << xss.PAGE_SHIFT, n << xss.PAGE_SHIFT)
            for pfn, offset, n in idx.runs()
        ]
        if not segments:
            raise XenSaveFormatException(self.name, "the save image holds no guest pages")
        self._segments = segments
        vollog.debug(
            f"{self.name}: {' -> '.join(idx.layers)}, {idx.domain_type_name}, "
            f"{idx.frames} frames in {len(segments)} runs, ended by {idx.ended_by}"
        )


class XenSaveStacker(interfaces.automagic.StackerLayerInterface):
    """Stacks ``XenSaveLayer`` on any layer that starts with the xl, virsh, libxl or libxc magic."""

    stack_order = 10

    @classmethod
    def stack(
        cls,
        context: interfaces.context.ContextInterface,
        layer_name: str,
        progress_callback: constants.ProgressCallback = None,
    ) -> Optional[interfaces.layers.DataLayerInterface]:
        base_layer = context.layers[layer_name]
        try:
            head = base_layer.read(0, min(xss.XL_HEADER_SIZE, base_layer.maximum_address + 1))
        except exceptions.InvalidAddressException:
            return None
        if xss.sniff(head) is None:
            return None
        new_name = context.layers.free_layer_name("XenSaveLayer")
        context.config[interfaces.configuration.path_join(new_name, "base_layer")] = layer_name
        try:
            return XenSaveLayer(context, new_name, new_name)
        except XenSaveFormatException as e:
            vollog.warning(f"{layer_name} looks like a Xen save image but cannot be read: {e}")
            return None
