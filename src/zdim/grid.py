"""Latent-size grids: the spec a user writes, checked before it is expanded, and the default grids.

``DimSpec.parse("1-4,8,16")`` reads ``--dims`` (or ``dims=`` of ``zdim.sweep``) into ranges without
expanding them, so ``--dims 1-100000000`` costs nothing: ``DimSpec.sizes(n_features)`` refuses, in one
line, a size above the data's feature count or a grid of more than ``MAX_SIZES`` sizes before it builds
the list. Pure Python (the command line parses ``--dims`` before torch is imported).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError

MAX_SIZES = 128  # latent sizes in one grid: beyond this a sweep is a mistake (use a coarse grid and refinement)


@dataclass(frozen=True)
class DimSpec:
    """Latent sizes as inclusive ranges ``((lo, hi), ...)``, not yet expanded."""

    ranges: tuple[tuple[int, int], ...]
    text: str = ""  # what the user wrote, for messages

    @classmethod
    def parse(cls, text: str) -> DimSpec:
        """``"2,5,10"``, ``"1-16"`` or a mix (``"1-4,8,16"``); ``ConfigError`` (one line) otherwise."""
        ranges: list[tuple[int, int]] = []
        try:
            for part in str(text).split(","):
                part = part.strip()
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1)
                    a, b = int(lo), int(hi)
                    if a > b:
                        raise ValueError
                    ranges.append((a, b))
                else:
                    ranges.append((int(part), int(part)))
        except ValueError:
            raise ConfigError(
                f"--dims {text!r} is not a list of sizes: use integers and ranges like 2,5,10 or 1-16"
            ) from None
        low = min(a for a, _ in ranges)
        if low < 1:
            raise ConfigError(f"--dims {text!r} has a size {low} < 1: latent sizes start at 1")
        return cls(tuple(ranges), str(text))

    @classmethod
    def of(cls, dims: Iterable[int] | str) -> DimSpec:
        """A spec from text, or from sizes given one by one (each a positive integer)."""
        if isinstance(dims, str):
            return cls.parse(dims)
        sizes: list[int] = []
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, float)) or int(d) != d or d < 1:
                raise ConfigError(f"latent size {d!r} is not a positive integer: fix --dims")
            sizes.append(int(d))
        if not sizes:
            raise ConfigError("no latent sizes given: pass e.g. --dims 2,4,8 or --dims 1-16")
        return cls(tuple((d, d) for d in sizes), ",".join(map(str, sizes)))

    @property
    def largest(self) -> int:
        return max(b for _, b in self.ranges)

    def count(self) -> int:
        """How many distinct sizes the spec holds (computed from the ranges, without expanding them)."""
        merged: list[list[int]] = []
        for a, b in sorted(self.ranges):
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return sum(b - a + 1 for a, b in merged)

    def sizes(self, n_features: int, name: str = "the data") -> tuple[int, ...]:
        """The sorted sizes, once checked: none above ``n_features``, at most ``MAX_SIZES`` of them."""
        if self.largest > n_features:
            raise ConfigError(
                f"latent size {self.largest} exceeds the {n_features} features of {name!r}: "
                f"choose sizes <= {n_features} in --dims"
            )
        n = self.count()
        if n > MAX_SIZES:
            raise ConfigError(
                f"--dims {self.text} asks for {n} latent sizes, more than {MAX_SIZES}: use a coarser grid "
                "(e.g. 1-8,16,32,64); the answer is refined between the sizes tried"
            )
        return tuple(sorted({d for a, b in self.ranges for d in range(a, b + 1)}))


def default_dims(n_features: int, cap: int = 64) -> tuple[int, ...]:
    """Powers of two up to ``min(n_features, cap)``, plus that bound itself."""
    top = min(n_features, cap)
    dims = [2**i for i in range(0, int(math.log2(top)) + 1)]
    return tuple(sorted(set(dims + [top])))


__all__ = ["DimSpec", "MAX_SIZES", "default_dims"]
