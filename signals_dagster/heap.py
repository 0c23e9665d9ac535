"""Building many long-lived objects without the cyclic garbage collector walking them."""

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """No cyclic collection while the block runs; what it made is frozen after it.

    Thousands of collectors make millions of objects, none of them garbage: the collector would
    walk the growing heap again and again while they are made (a tenth of a load). Made while
    it is off, they all sit in its youngest generation: re-enabled as they are, its next
    collections (and the one at exit) would walk every one of them again, so they leave its
    generations for good (gc.freeze); they live as long as the process (a code location, the
    report of `signals validate`)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()
