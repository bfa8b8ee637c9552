"""Draw the single-file build's splash screen (assets/splash/splash.png, used by build.spec).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/make_splash.py

The launcher writes its status (unpacking progress, "Starting SinkVis…") under the title, at
build.spec's SPLASH_TEXT_POS; the image leaves that strip empty.
"""
import sys
from pathlib import Path

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

OUT = Path(__file__).resolve().parents[1] / "assets" / "splash" / "splash.png"
WIDTH, HEIGHT = 520, 200


def main() -> int:
    app = QGuiApplication(sys.argv)  # noqa: F841 - fonts need it
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_RGB32)
    image.fill(QColor("#0f1117"))  # the window's background colour
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor("#2a2f3d"), 2))
    p.drawRect(QRectF(1, 1, WIDTH - 2, HEIGHT - 2))
    for i, height in enumerate((46, 18, 12, 30, 9, 14, 22, 8)):  # attention bars: a sink on the first token
        p.fillRect(QRectF(32 + i * 14, 88 - height, 10, height), QColor("#f0883e" if i == 0 else "#4c8dff"))
    p.setPen(QColor("#e6e6e6"))
    p.setFont(QFont("DejaVu Sans", 26, QFont.Weight.Bold))
    p.drawText(QRectF(160, 30, WIDTH - 170, 40), Qt.AlignmentFlag.AlignLeft, "SinkVis")
    p.setPen(QColor("#9aa4b2"))
    p.setFont(QFont("DejaVu Sans", 11))
    p.drawText(QRectF(160, 70, WIDTH - 170, 24), Qt.AlignmentFlag.AlignLeft, "Attention Sink & KV Cache Visualizer")
    p.setFont(QFont("DejaVu Sans", 9))
    p.drawText(QRectF(32, HEIGHT - 34, WIDTH - 64, 20), Qt.AlignmentFlag.AlignLeft,
               "The window opens in a few seconds.")
    p.end()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    image.save(str(OUT))
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
