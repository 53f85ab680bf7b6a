"""Is an H.264 / HEVC keyframe an IDR picture, i.e. can decoding start there with nothing lost?

Containers flag more than IDR pictures as keyframes: H.264 open-GOP I pictures and intra-refresh
recovery points, HEVC CRA and BLA pictures. After a seek to one of those the decoder drops the
frames it cannot rebuild (those shown before it, or until the refresh completes), which a
reader that counts decoded frames (decord) cannot see. Only the packet's first slice NAL unit
needs reading: its type says IDR or not.
"""

from __future__ import annotations

from collections.abc import Iterator

H264_IDR = {5}
HEVC_IDR = {19, 20}  # IDR_W_RADL, IDR_N_LP


def nal_length_size(codec: str, extradata: bytes | None) -> int | None:
    """Bytes of each NAL unit's length prefix (mp4/mkv ``avcC``/``hvcC``); None: Annex B start codes."""
    if not extradata or extradata[0] != 1:
        return None
    if codec == "h264" and len(extradata) > 4:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) > 21:
        return (extradata[21] & 3) + 1
    return None


def _nal_units(data: bytes, length_size: int | None) -> Iterator[bytes]:
    if length_size is None:  # Annex B: units follow 00 00 01 start codes
        for part in data.split(b"\x00\x00\x01")[1:]:
            yield part
        return
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        yield data[pos : pos + size]
        pos += size


def _slice_type(nal: bytes, codec: str) -> int | None:
    """The NAL unit type if it carries picture data (a VCL unit), else None."""
    if not nal:
        return None
    if codec == "h264":
        kind = nal[0] & 0x1F
        return kind if 1 <= kind <= 5 else None
    kind = (nal[0] >> 1) & 0x3F
    return kind if kind <= 31 else None


def is_idr(packet: bytes, codec: str, length_size: int | None) -> bool:
    """Whether the packet's first picture NAL unit is an IDR one (``codec``: h264 or hevc)."""
    idr = H264_IDR if codec == "h264" else HEVC_IDR
    for nal in _nal_units(packet, length_size):
        kind = _slice_type(nal, codec)
        if kind is not None:
            return kind in idr
    return False
