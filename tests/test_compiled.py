"""The compiled-model cache (model.compiled): a second process starts from the compiled network without reading
the weights, gives the same pixels, and anything that changes what was compiled misses instead of serving a
stale network."""
import os
import shutil

import numpy as np
import pytest

from model import artifacts, runners
from model.artifacts import read_manifest
from model.compiled import SUFFIX, CompiledCache, cache_key, compiled_cache
from model.engine import Upscaler
from model.settings import SHIPPED_MODELS_DIR, Settings


@pytest.fixture
def model(tmp_path):
    """A copy of a shipped model with two interpolation ends (its files may be touched and replaced)."""
    folder = tmp_path / "esrgan-real-x2"
    shutil.copytree(SHIPPED_MODELS_DIR / "esrgan-real-x2", folder)
    return folder


def upscale(folder, cache, strength=0.5, img=None):
    up = Upscaler.from_artifact(folder, strength=strength, precision="float32", backend="openvino", cache=cache)
    return up.upscale(img, tile=0)


def blobs(cache):
    return sorted(cache.folder.glob(f"*{SUFFIX}"))


def no_weights(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the weights were read although the compiled network was cached")

    monkeypatch.setattr(runners, "load_parts", refuse)


def test_second_load_comes_from_the_cache_without_reading_weights(model, tmp_path, photo, monkeypatch):
    cache = CompiledCache(tmp_path / "compiled", 1024)
    reference = upscale(model, None, img=photo)
    assert np.array_equal(upscale(model, cache, img=photo), reference)
    assert len(blobs(cache)) == 1
    runners.OpenVINORunner._core = None  # as a new process would: a fresh OpenVINO core
    no_weights(monkeypatch)
    assert np.array_equal(upscale(model, cache, img=photo), reference)
    assert len(blobs(cache)) == 1


def test_strength_precision_and_changed_weights_are_other_keys(model, tmp_path, photo, monkeypatch):
    cache = CompiledCache(tmp_path / "compiled", 1024)
    upscale(model, cache, strength=0.5, img=photo)
    a = upscale(model, cache, strength=0.2, img=photo)
    assert len(blobs(cache)) == 2
    assert not np.array_equal(a, upscale(model, None, strength=0.5, img=photo))
    # The weights file replaced by other bytes: the full load runs and its checksum check refuses them
    weights = model / read_manifest(model).weights.file
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        upscale(model, cache, strength=0.5, img=photo)
    # The same bytes written again (a new modification time): a miss, rebuilt and verified, not a stale blob
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(1, 1))
    calls = []
    real = runners.load_parts
    monkeypatch.setattr(runners, "load_parts", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert np.array_equal(upscale(model, cache, strength=0.2, img=photo), a)
    assert calls == [1] and len(blobs(cache)) == 3


def test_unreadable_blob_is_rebuilt(model, tmp_path, photo):
    cache = CompiledCache(tmp_path / "compiled", 1024)
    reference = upscale(model, cache, img=photo)
    [blob] = blobs(cache)
    blob.write_bytes(blob.read_bytes()[:1000])  # truncated, as a full disk or a killed writer leaves it
    assert np.array_equal(upscale(model, cache, img=photo), reference)
    assert blob.stat().st_size > 100_000  # written again whole


def test_folder_is_bounded_least_recently_used_first(model, tmp_path, photo):
    one = CompiledCache(tmp_path / "probe", 1024)
    upscale(model, one, strength=0.1, img=photo)
    size = blobs(one)[0].stat().st_size
    cache = CompiledCache(tmp_path / "compiled", 1024)
    cache.limit = int(size * 2.5)  # room for two blobs
    for s in (0.1, 0.2, 0.3):
        upscale(model, cache, strength=s, img=photo)
        for j, path in enumerate(sorted(blobs(cache), key=lambda p: p.stat().st_mtime_ns)):
            os.utime(path, ns=(j + 1, j + 1))  # mtimes in write order, whatever the clock's resolution
    kept = {p.stem for p in blobs(cache)}
    manifest = read_manifest(model)
    assert kept == {cache_key(model, manifest, s, "float32", True) for s in (0.2, 0.3)}  # 0.1 went first


def test_unwritable_folder_still_upscales(model, tmp_path, photo):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = CompiledCache(blocker / "compiled", 1024)
    assert np.array_equal(upscale(model, cache, img=photo), upscale(model, None, img=photo))


def test_setting_switches_it_off(tmp_path):
    assert compiled_cache(Settings(compiled_cache_dir=tmp_path, compiled_cache_mb=0)) is None
    cache = compiled_cache(Settings(compiled_cache_dir=tmp_path, compiled_cache_mb=5))
    assert cache.folder == tmp_path and cache.limit == 5 * 2**20
