"""Architectures by name: the manifest's ``arch`` and ``params`` select and size one."""
from typing import Any, Callable

import keras


def _rrdbnet(**p):
    from .rrdbnet import build_rrdbnet

    return build_rrdbnet(**p)


def _srresnet(**p):
    from .srresnet import build_srresnet

    return build_srresnet(**p)


def _srvgg(**p):
    from .srvgg import build_srvgg

    return build_srvgg(**p)


GENERATORS: dict[str, Callable[..., keras.Model]] = {"rrdbnet": _rrdbnet, "srresnet": _srresnet, "srvgg": _srvgg}


def build_generator(arch: str, params: dict[str, Any]) -> keras.Model:
    try:
        builder = GENERATORS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(GENERATORS))}") from None
    return builder(**params)
