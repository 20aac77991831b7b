"""One colour per series name for a whole report, so a run or an asset looks the same in every panel.

A :class:`ColourMap` hands out the colours of its palette in the order names are first seen (names
given to the constructor are seen first, in their order) and returns the same colour for a name
every time after. Beyond the palette's length colours repeat; callers with many series (assets)
show the largest ones and group the rest (see :func:`graphwiz_trader.reports.top_and_rest`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Plotly's default qualitative palette (plotly.colors.qualitative.Plotly): runs, benchmarks.
RUN_PALETTE: tuple[str, ...] = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3",
                                "#FF6692", "#B6E880", "#FF97FF", "#FECB52")
# plotly.colors.qualitative.Dark24: assets (more distinct hues than the run palette).
ASSET_PALETTE: tuple[str, ...] = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A",
                                  "#B68100", "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1",
                                  "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1",
                                  "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038")
OTHER_COLOUR = "#B0B0B0"  # the grouped remainder ("other N assets")


class ColourMap:
    """Name -> colour, fixed at first use.

    Parameters
    ----------
    palette
        Colours (any CSS colour string) handed out in order.
    names
        Names to assign first, in this order (e.g. every run of the report), so the assignment does
        not depend on which panel asks first.
    fixed
        Names with a colour of their own (e.g. ``{"other": OTHER_COLOUR}``); they do not use up palette slots.
    """

    def __init__(self, palette: Sequence[str] = RUN_PALETTE, names: Iterable[str] = (),
                 fixed: dict[str, str] | None = None) -> None:
        if not palette:
            raise ValueError("a colour map needs at least one colour")
        self._palette = tuple(palette)
        self._assigned: dict[str, str] = dict(fixed or {})
        self._next = 0
        for n in names:
            self[n]

    def __getitem__(self, name: str) -> str:
        key = str(name)
        colour = self._assigned.get(key)
        if colour is None:
            colour = self._palette[self._next % len(self._palette)]
            self._next += 1
            self._assigned[key] = colour
        return colour

    def __contains__(self, name: object) -> bool:
        return str(name) in self._assigned

    def items(self) -> list[tuple[str, str]]:
        """Every (name, colour) handed out so far, in assignment order."""
        return list(self._assigned.items())


def with_alpha(colour: str, alpha: float) -> str:
    """``#RRGGBB`` as ``rgba(r, g, b, alpha)`` (fills under lines, shaded bands)."""
    c = colour.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"with_alpha needs a #RRGGBB colour, got {colour!r}")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha:g})"
