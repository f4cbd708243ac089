"""The font annotation text is drawn in: one that has Chinese glyphs, so a film annotated
"张三 胸部CT" reads as written instead of as empty boxes.

Pillow's own font covers Latin only. We take, in order: `printscp.annotation_font` when set;
a font fontconfig lists for Chinese (`fc-list :lang=zh`); the usual places on Debian, Windows
and macOS. With none, Latin text still prints and the first non-Latin text logs how to fix it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from PIL import ImageFont

from openpacs.logs import get_logger

log = get_logger("printscp")

# Checked after fontconfig: Debian's fonts-noto-cjk, fonts-wqy-microhei, fonts-wqy-zenhei,
# fonts-arphic-uming, then Windows' and macOS's own.
KNOWN_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "/System/Library/Fonts/PingFang.ttc",
)
FIX = (
    "install a Chinese font (Debian: apt-get install fonts-noto-cjk or fonts-wqy-microhei) or "
    "set printscp.annotation_font to a .ttf/.ttc/.otf file"
)


class FontNotFound(ValueError):
    """printscp.annotation_font names a file that is not a font we can load."""


@functools.lru_cache(maxsize=8)
def chinese_font(configured: str = "") -> Path | None:
    """The font file to draw annotations with, or None (Pillow's Latin-only font)."""
    if configured:
        path = Path(configured).expanduser()
        try:
            ImageFont.truetype(str(path), 12)
        except OSError as exc:
            raise FontNotFound(f"printscp.annotation_font {configured!r}: {exc}") from exc
        return path
    for candidate in [*_fontconfig_chinese(), *map(Path, KNOWN_FONTS)]:
        if candidate.is_file():
            return candidate
    return None


def _fontconfig_chinese() -> list[Path]:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listed = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = sorted({line.split(":")[0].strip() for line in listed.splitlines() if line.strip()})
    # Prefer the families made for Chinese over fallback fonts that merely cover it.
    preferred = ("NotoSansCJK", "NotoSerifCJK", "wqy", "uming", "ukai", "Droid")
    return sorted(
        map(Path, files),
        key=lambda p: next((i for i, name in enumerate(preferred) if name in p.name), 99),
    )


def load(size: int, configured: str = "") -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The annotation font at `size` pixels."""
    found = chinese_font(configured)
    if found is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(found), size)


def warn_if_missing(text: str, configured: str = "") -> None:
    """Log once per process when `text` needs glyphs Pillow's own font does not have."""
    if chinese_font(configured) is None and any(ord(ch) > 0x24F for ch in text):
        _warn_once()


@functools.lru_cache(maxsize=1)
def _warn_once() -> None:
    log.warning("annotation text beyond Latin will print as boxes: %s", FIX)
