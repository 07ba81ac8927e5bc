"""The official checkpoints, by file name: where they come from and the licence of the repository that
publishes them. Used for the manifest's ``license``/``description`` when the user gives none; a renamed
file is simply not recognised (``--license`` sets it by hand).

The releases do not state a separate licence for the weights; the repository's licence is the best
available statement, and docs/converting.md says so.
"""
from typing import NamedTuple

ESRGAN = "Apache-2.0 (ESRGAN repository licence; no separate licence stated for the weights)"
REAL_ESRGAN = "BSD-3-Clause (Real-ESRGAN repository licence; no separate licence stated for the weights)"


class Known(NamedTuple):
    license: str
    description: str
    url: str


_ESRGAN_MODELS = "https://github.com/xinntao/ESRGAN (README: Google Drive / Baidu links)"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"

KNOWN = {
    "RRDB_ESRGAN_x4": Known(ESRGAN, "ESRGAN x4 (Wang et al. 2018), the paper's GAN model", _ESRGAN_MODELS),
    "RRDB_PSNR_x4": Known(ESRGAN, "ESRGAN x4 PSNR-oriented model (smooth, high PSNR)", _ESRGAN_MODELS),
    # The same two models as first released, before the repository's 2019 refactor (model.N naming).
    "RRDB_ESRGAN_x4_old_arch": Known(ESRGAN, "ESRGAN x4 (Wang et al. 2018), the paper's GAN model", _ESRGAN_MODELS),
    "RRDB_PSNR_x4_old_arch": Known(ESRGAN, "ESRGAN x4 PSNR-oriented model (smooth, high PSNR)", _ESRGAN_MODELS),
    "RealESRGAN_x4plus": Known(REAL_ESRGAN, "Real-ESRGAN x4plus: real-world photos",
                               f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth"),
    "RealESRNet_x4plus": Known(REAL_ESRGAN, "Real-ESRNet x4plus: real-world photos, PSNR-oriented (no GAN)",
                               f"{_RELEASES}/v0.1.1/RealESRNet_x4plus.pth"),
    "RealESRGAN_x4plus_anime_6B": Known(REAL_ESRGAN, "Real-ESRGAN x4plus anime: illustrations, 6 blocks",
                                        f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth"),
    "RealESRGAN_x2plus": Known(REAL_ESRGAN, "Real-ESRGAN x2plus: real-world photos at x2",
                               f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth"),
    "realesr-general-x4v3": Known(REAL_ESRGAN, "Real-ESRGAN general x4 v3: small and fast (SRVGGNetCompact)",
                                  f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth"),
    "realesr-general-wdn-x4v3": Known(REAL_ESRGAN, "Real-ESRGAN general x4 v3 without denoising (SRVGGNetCompact)",
                                      f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth"),
    "realesr-animevideov3": Known(REAL_ESRGAN, "Real-ESRGAN anime video v3: very small and fast (SRVGGNetCompact)",
                                  f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth"),
}
