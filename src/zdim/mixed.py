"""The mixed likelihood of a table with numbers, two-valued and categorical columns (issue 31).

The encoded row is laid out by kind: ``g`` numeric columns first (standardized; Gaussian, with the
learned ``log_sigma`` of those columns), then ``b`` two-valued columns (0/1; Bernoulli logits), then
one one-hot block per categorical column of ``K`` categories (a softmax over its ``K`` logits). The
layout travels inside the likelihood's name, ``mixed:g3,b1,c4.7`` (3 numbers, 1 binary, categoricals of
4 and 7 categories), so ``Data``, ``VAEConfig``, ``model.json`` and the records keep a plain string and
a saved model reloads its layout with its weights; ``zdim.likelihoods.get`` parses it. The names users
type is ``mixed`` alone (``--likelihood mixed``); the reader (``zdim.data.columns``) adds the layout.

``log_prob`` sums one term per column: a categorical column is one term (its log-softmax at the
observed category), not ``K``. Only the numeric columns are densities: the data's standardization is the
identity (mean 0, std 1) on every other encoded column, so the log-Jacobian of ``Preprocessing`` counts
the numeric columns alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .errors import ConfigError
from .likelihoods import MIN_LOG_SIGMA, Gaussian, Likelihood
from .references import LOG_2PI, Reference, _moments, _rows

if TYPE_CHECKING:
    import torch

PREFIX = "mixed"
FREQ_MIN = 1e-6  # floor on a marginal frequency of the reference model (a category unseen in training)
_SPEC = re.compile(r"^mixed:g(\d+),b(\d+),c([\d.]*)$")


@dataclass(frozen=True)
class Layout:
    """How an encoded row of a mixed table is laid out: ``numbers`` Gaussian columns, then ``binaries``
    Bernoulli columns, then one block per entry of ``categories`` (its number of categories)."""

    numbers: int = 0
    binaries: int = 0
    categories: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        """Encoded features (``D`` of the model)."""
        return self.numbers + self.binaries + sum(self.categories)

    @property
    def columns(self) -> int:
        """Columns of the table, each counted once (a categorical is one column, not ``K``)."""
        return self.numbers + self.binaries + len(self.categories)

    @property
    def name(self) -> str:
        return f"{PREFIX}:g{self.numbers},b{self.binaries},c{'.'.join(str(k) for k in self.categories)}"

    def blocks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each categorical block in the encoded row."""
        out, start = [], self.numbers + self.binaries
        for k in self.categories:
            out.append((start, start + k))
            start += k
        return out

    @classmethod
    def parse(cls, name: str) -> Layout:
        """The layout a name such as ``mixed:g3,b1,c4.7`` stands for; ``ConfigError`` if malformed."""
        m = _SPEC.match(name)
        if m is None:
            raise ConfigError(
                f"likelihood {name!r} is not a mixed layout such as 'mixed:g3,b1,c4.7': pass --likelihood mixed "
                "(or auto) and let the reader describe the columns"
            )
        cats = tuple(int(k) for k in m.group(3).split(".") if k)
        layout = cls(int(m.group(1)), int(m.group(2)), cats)
        if layout.width < 1 or any(k < 1 for k in cats):
            raise ConfigError(f"likelihood {name!r} has no columns (or an empty category block)")
        return layout


class Mixed(Likelihood):
    """A table's columns each with its own likelihood (see the module docstring). ``mixed`` alone (no
    layout) is what a user asks for; every family that computes has a layout (``family(name)``)."""

    name = PREFIX
    layout: ClassVar[Layout] = Layout()
    params = ("log_sigma",)  # (D,) as every family's; only the numeric columns' entries are used
    density = True  # the numeric columns: the log-Jacobian of their standardization applies
    noise = "log_sigma"
    wakeup = Gaussian.wakeup

    def mean(self, out: torch.Tensor, library: torch.Tensor | float | None = None) -> torch.Tensor:
        """Numbers: the decoded means; binaries: probabilities; categories: the softmax of each block."""
        import torch

        lay = self._layout()
        g, b = lay.numbers, lay.binaries
        parts = [out[..., :g], torch.sigmoid(out[..., g : g + b])]
        parts += [torch.softmax(out[..., s:e], dim=-1) for s, e in lay.blocks()]
        return torch.cat(parts, dim=-1)

    def log_prob(self, x: torch.Tensor, out: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        lay = self._layout()
        g, b = lay.numbers, lay.binaries
        total = torch.zeros(out.shape[:-1], dtype=out.dtype, device=out.device)
        if g:
            log_sigma = params["log_sigma"][..., :g].clamp(min=MIN_LOG_SIGMA)
            z2 = ((x[..., :g] - out[..., :g]) * torch.exp(-log_sigma)) ** 2
            total = total - (0.5 * z2 + log_sigma + 0.5 * LOG_2PI).sum(-1)
        if b:
            logits = out[..., g : g + b]
            target = x[..., g : g + b].expand_as(logits)
            total = total - F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        for s, e in lay.blocks():
            total = total + (x[..., s:e] * torch.log_softmax(out[..., s:e], dim=-1)).sum(-1)
        return total

    def numbers(self, width: int) -> int:
        return self._layout().numbers

    def _start_bias(self, bias: np.ndarray, train: torch.Tensor, chunk: int) -> None:
        """The binaries and categories start at their training frequencies (the logits of the reference)."""
        lay = self._layout()
        g, b = lay.numbers, lay.binaries
        s1, _, _ = _moments(train, chunk, False)
        freq = s1 / int(train.shape[0])
        p = np.clip(freq[g : g + b], FREQ_MIN, 1 - FREQ_MIN)
        bias[g : g + b] = np.log(p) - np.log1p(-p)
        for s, e in lay.blocks():
            f = np.maximum(freq[s:e], FREQ_MIN)
            bias[s:e] = np.log(f / f.sum())

    def check_range(self, low: float, high: float, where: str) -> None:
        """The encoding (``zdim.data.columns``) checks every column; nothing to check on the whole row."""

    def reference(self, train: torch.Tensor, test: torch.Tensor, chunk: int = 4096) -> Reference | None:
        """The model that ignores its latents, column by column: a Gaussian per number (its training mean
        and variance), each binary's and each category's training frequency (floored at ``FREQ_MIN``)."""
        lay = self._layout()
        g, b = lay.numbers, lay.binaries
        m = int(train.shape[0])
        s1, s2, _ = _moments(train, chunk, False)
        mean = s1 / m
        var = np.maximum((s2[:g] - m * mean[:g] ** 2) / max(m - 1, 1), 1e-12)
        p = np.clip(mean[g : g + b], FREQ_MIN, 1 - FREQ_MIN)
        logf = []
        for s, e in lay.blocks():
            f = np.maximum(mean[s:e], FREQ_MIN)
            logf.append(np.log(f / f.sum()))
        log_cat = np.concatenate(logf) if logf else np.zeros(0)
        parts = []
        for t in _rows(test, chunk):
            nll = 0.5 * (LOG_2PI + np.log(var) + (t[:, :g] - mean[:g]) ** 2 / var).sum(1)
            tb = t[:, g : g + b]
            nll -= (tb * np.log(p) + (1 - tb) * np.log1p(-p)).sum(1)
            nll -= t[:, g + b :] @ log_cat
            parts.append(nll)
        return Reference(self.name, np.concatenate(parts))

    def _layout(self) -> Layout:
        if self.layout.width == 0:
            raise ConfigError(
                "likelihood 'mixed' without its columns: read the table with zdim.load_data (or the zdim "
                "command), which describes its columns"
            )
        return self.layout


_FAMILIES: dict[str, Mixed] = {}


def family(name: str) -> Mixed:
    """The ``Mixed`` family of a layout name (``mixed:g3,b1,c4.7``), one instance per name."""
    found = _FAMILIES.get(name)
    if found is None:
        layout = Layout.parse(name)
        cls = type("Mixed", (Mixed,), {"name": layout.name, "layout": layout})
        found = _FAMILIES.setdefault(name, cls())
    return found


def is_mixed(name: str | None) -> bool:
    """Whether ``name`` is the mixed likelihood, with or without its layout."""
    return name is not None and (name == PREFIX or name.startswith(PREFIX + ":"))


def columns_of(name: str, width: int) -> int:
    """The table columns of data of ``width`` encoded features under likelihood ``name`` (each column
    once); ``width`` itself for every other likelihood."""
    return Layout.parse(name).columns if name.startswith(PREFIX + ":") else width


__all__ = ["Layout", "Mixed", "family", "is_mixed", "columns_of", "PREFIX"]
