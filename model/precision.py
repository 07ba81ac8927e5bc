"""The compute types of the engine and of training (weights stay float32). A module of its own, free of
every dependency, so that code without TensorFlow or pydantic (the PyTorch trainer on a lent GPU machine)
checks a precision by the same list."""
from typing import Literal, get_args

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
