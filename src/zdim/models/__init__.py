"""Models: the VAE, the user's own model (its protocol, its spec), Pythae networks, the checkpoint format.

Modules are imported by their own names (``zdim.models.vae.<module>``); this package imports nothing."""
