"""RawGAT-ST (``mul`` fusion) audio anti-spoofing on ONNX Runtime.

Same contract as :mod:`sleuth.models.aasist`: one 16 kHz mono window per item, made exactly
64600 samples long (RawGAT-ST's node-axis projections only accept that length), result =
P(fake) = softmax(logits)[0].
"""

from __future__ import annotations

from sleuth.models.aasist import WaveformDetector


class RawGatST(WaveformDetector):
    name = "rawgat-st"
