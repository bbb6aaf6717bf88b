"""persistkit_train: the resumable Thai phone-number price ensemble built on persistkit."""

__version__ = "0.1.0"
