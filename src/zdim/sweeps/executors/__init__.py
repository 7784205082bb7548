"""How the members of a sweep train: settle mode (``settle``, its members in ``member``, its engines in
``engines``), per-size mode (``per_size``), folds (``folded``), one nested model (``nested``), and the grid's
growth between phases (``growth``)."""
