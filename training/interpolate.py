"""Network interpolation (ESRGAN sec. 3.4): one artifact holding the PSNR-oriented and the GAN weights
of the same network; at inference ``strength`` blends them (0 = smooth PSNR end, 1 = sharp GAN end)."""
from __future__ import annotations

from pathlib import Path

from model.artifacts import Manifest, read_manifest, read_weights, save_artifact
from model.errors import ArtifactError


def interpolate_artifacts(psnr_dir: Path | str, gan_dir: Path | str, out_dir: Path | str, name: str,
                          default_strength: float = 0.8) -> Manifest:
    """``psnr_dir``'s smooth end (its restoration end where it has one, else its weights) and ``gan_dir``'s
    sharp end (its weights) in one artifact. Ends of different networks (e.g. an RRDBNet restoration end and
    a compact SRVGG sharp end) are blended by output at inference: both networks run between the ends."""
    psnr, gan = read_manifest(psnr_dir), read_manifest(gan_dir)
    for what in ("scale", "network_scale", "value_range"):
        if getattr(psnr, what) != getattr(gan, what):
            raise ArtifactError(f"cannot interpolate {psnr.name} and {gan.name}: different {what} "
                                f"({getattr(psnr, what)} vs {getattr(gan, what)})")
    if not 0.0 <= default_strength <= 1.0:
        raise ValueError(f"default strength must be between 0 and 1, got {default_strength}")
    # An interpolated PSNR_ART gives its restoration end: weights, network, and that end's training and metrics
    ends = psnr.interpolation is not None
    smooth = psnr.interpolation.psnr if ends else psnr.weights
    psnr_training = psnr.training.get("psnr", psnr.training) if ends else psnr.training
    psnr_metrics = psnr.metrics.get("psnr_end", psnr.metrics) if ends else psnr.metrics
    gan_w, psnr_w = read_weights(gan_dir, gan.weights), read_weights(psnr_dir, smooth)
    return save_artifact(
        out_dir, gan_w, psnr_weights=psnr_w, default_strength=default_strength, psnr_network=psnr.networks()[-1],
        name=name, arch=gan.arch, params=gan.params, scale=gan.scale, value_range=gan.value_range,
        description=f"{gan.description} / {psnr.description}: interpolation, strength 0 (smooth) to 1 (sharp)",
        license=gan.license, source=gan.source,
        training={"interpolation_of": {"gan": gan.name, "psnr": psnr.name},
                  "gan": gan.training, "psnr": psnr_training},
        metrics={"gan_end": gan.metrics, "psnr_end": psnr_metrics},
    )
