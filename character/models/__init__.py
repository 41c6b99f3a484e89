"""Locating the weights of the model being trained, and building the embedded tiny model."""
