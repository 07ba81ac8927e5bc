"""Errors the library raises; each carries a message meant for the user and a stable code."""


class ESRGANError(Exception):
    code = "error"


class ImageError(ESRGANError):
    """Bytes that are not a supported, readable image."""

    code = "bad_image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class LimitExceeded(ESRGANError):
    """Input or output over a configured pixel or byte limit."""

    code = "limit_exceeded"


class ArtifactError(ESRGANError):
    """A model artifact that is missing, corrupt or inconsistent with its manifest."""

    code = "bad_artifact"


class ModelNotFound(ArtifactError):
    code = "unknown_model"


class Canceled(ESRGANError):
    code = "canceled"


class InvalidOption(ESRGANError):
    """An option that does not apply (e.g. a strength for a model without interpolation)."""

    code = "invalid_option"


class MissingExtra(ESRGANError):
    """A command needs an optional part of the install (e.g. TensorFlow, the ``[ml]`` extra)."""

    code = "missing_extra"
