"""ESRGAN model library: architectures, artifacts, image I/O and the inference engine.

Importing this package does not import TensorFlow; the modules that need it import it themselves.
"""
