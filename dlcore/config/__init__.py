"""Configuration: sections, choices and errors (registry-free, so every layer can use it).

The experiment schema built from the registries is ``dlcore.config.experiment``; reading
TOML files and ``--set`` overrides is ``dlcore.config.loading``.
"""

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.section import Section, one_of

__all__ = ["ConfigError", "FieldError", "Section", "one_of"]
