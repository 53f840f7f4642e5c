"""Detector plugins: one module each, declaring DETECTOR_KEY, a config class and a DetectionApi subclass."""
