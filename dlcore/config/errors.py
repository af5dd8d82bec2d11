"""Config errors: one line per problem, ``<file>: <dotted.field>: <what is wrong>``."""


class ConfigError(ValueError):
    """One or more problems in an experiment config, each ``(field, message)``."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.source}: {f}: {m}" if f else f"{self.source}: {m}" for f, m in self.problems
        ]


class FieldError(ValueError):
    """A problem with one config field found while building (the experiment builder turns
    it into a :class:`ConfigError` naming the file).

    Example:
      >>> raise FieldError("task.name", "digits has no real-valued targets")
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
