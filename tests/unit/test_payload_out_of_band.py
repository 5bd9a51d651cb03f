"""Large ``bytes`` arguments and results travel as frames of their own, not copied into the pickle."""

from __future__ import annotations

import os

from gridlib.daemons.runtime.payload import (
    OUT_OF_BAND_BYTES,
    pack_args,
    pack_value,
    unpack_args,
    unpack_value,
)


def test_a_large_bytes_argument_is_its_own_frame_and_loads_back_as_bytes() -> None:
    big, small = os.urandom(OUT_OF_BAND_BYTES), b"small"
    frames = pack_args((big, 3, small), {"also": big, "text": "x"})
    sizes = [memoryview(f).nbytes for f in frames]
    assert sizes[1:] == [len(big), len(big)] and sizes[0] < 1024  # the pickle itself stays small
    assert memoryview(frames[1]).obj is big  # the frame is the caller's own bytes, not a copy
    args, kwargs = unpack_args(frames)
    assert args == (big, 3, small) and kwargs == {"also": big, "text": "x"}
    assert type(args[0]) is bytes and type(kwargs["also"]) is bytes


def test_a_large_bytes_result_too_and_smaller_ones_stay_in_the_pickle() -> None:
    big = os.urandom(OUT_OF_BAND_BYTES + 1)
    frames = pack_value(big)
    assert len(frames) == 2 and memoryview(frames[1]).nbytes == len(big)
    assert unpack_value(frames) == big and type(unpack_value(frames)) is bytes
    below = os.urandom(OUT_OF_BAND_BYTES - 1)
    assert len(pack_value(below)) == 1 and unpack_value(pack_value(below)) == below
    nested = [big]  # only a value or a top-level argument goes out of band; nested ones still load
    assert unpack_value(pack_value(nested)) == nested
    subclass = type("Tagged", (bytes,), {})(b"x" * OUT_OF_BAND_BYTES)
    assert type(unpack_value(pack_value(subclass))).__name__ == "Tagged"  # not turned into bytes
