"""The options of a sweep resolved into one checked plan: ``config`` (the training and the grid) and
``plan`` (the mode, the folds, the workers, every check a door needs before anything is written)."""
