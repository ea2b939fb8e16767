"""sleuth: self-hosted batch detection for camera-trap wildlife images and deepfake media."""

__version__ = "0.1.0"
