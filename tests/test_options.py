"""JobOptions is the one option model: the API form, `esrgan upscale` (local and --server) and the Python
client take their names, defaults, ranges and help from it, and the value stored is the value run."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from esrgan import client
from esrgan.upscale import job_options, register
from model.errors import InvalidOption
from model.options import JobOptions, resolve_strength


def upscale_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def parse(*argv: str):
    return upscale_parser().parse_args(["upscale", "in.png", "-o", "out", *argv])


def test_every_option_is_a_flag_with_the_models_help_and_default():
    up = upscale_parser()._subparsers._group_actions[0].choices["upscale"]
    flags = {a.dest: a for a in up._actions}
    for name in JobOptions.names(local=True):
        field = JobOptions.model_fields[name]
        assert field.description in flags[name].help
        assert flags[name].default is None  # unset: JobOptions' default applies
    assert "callback_url" not in flags  # service only
    assert flags["scale"].choices == JobOptions.CHOICES["scale"]
    assert "1 to 100" in flags["quality"].help


def test_the_client_takes_the_models_names():
    assert client.OPTIONS == JobOptions.names()
    assert "callback_url" in client.OPTIONS


def test_flags_become_job_options_checked_with_the_models_ranges():
    options = job_options(parse("--scale", "2", "--quality", "80", "--ensemble", "--strength", "0.333"))
    assert options == JobOptions(scale=2, quality=80, ensemble=True, strength=0.33)
    assert job_options(parse()) == JobOptions()  # nothing given: the model's defaults (quality decided later)
    with pytest.raises(InvalidOption, match="--quality: Input should be less than or equal to 100"):
        job_options(parse("--quality", "101"))
    with pytest.raises(InvalidOption, match="--tile: Input should be greater than or equal to 0"):
        job_options(parse("--tile", "-1"))
    with pytest.raises(InvalidOption, match="give either outscale or width/height"):
        job_options(parse("--outscale", "2", "--width", "10"))


def test_the_strength_stored_is_the_strength_run():
    assert JobOptions(strength=0.333).strength == 0.33  # what a job stores, and what its worker loads
    assert JobOptions.model_validate_json(JobOptions(strength=0.666).model_dump_json()).strength == 0.67
    interpolated = SimpleNamespace(name="blend", interpolation=SimpleNamespace(default_strength=0.8))
    assert resolve_strength(interpolated, 0.333) == 0.33 and resolve_strength(interpolated, None) == 0.8
    with pytest.raises(InvalidOption, match="strength: Input should be less than or equal to 1"):
        resolve_strength(interpolated, 1.5)  # the engine's check is the model's range, in its words
    with pytest.raises(InvalidOption, match="has no strength setting"):
        resolve_strength(SimpleNamespace(name="plain", interpolation=None), 0.5)
