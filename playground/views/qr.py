"""QR codes for links shown on a projector, drawn by segno (pure Python, no image library needed)."""
from __future__ import annotations

import io

import segno


def png(url: str, scale: int = 6) -> bytes:
    """A PNG of ``url`` as a QR code (error correction M; dark modules on white, with the quiet zone)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
