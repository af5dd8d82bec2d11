"""Date-format normalisation: a date written the way people write it -> ISO 8601.

``"Tue 12 Mar 2019"``, ``"March 12, 2019"``, ``"12/03/2019"`` ... -> ``"2019-03-12"``, one
character per token (see :mod:`dlcore.data.seq2seq_tasks` for the fields). Numeric formats
always put the **day first** (``12/03/2019`` is 12 March), so no input is ambiguous. Month and
weekday names are English and spelled out here, not taken from the locale, so the data are the
same on every machine.
"""

import datetime
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset
from dlcore.data.seq2seq_tasks import Seq2seqData, char_vocab, seq2seq_dataset

MONTHS = (
    "January February March April May June July August September October November December"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# name -> (template, the strptime format that reads it back); d = day without a leading
# zero, dd/mm = two digits, B/b = month name/abbreviation, A/a = weekday name/abbreviation.
DATE_FORMATS: dict[str, tuple[str, str]] = {
    "day_month_year": ("{d} {B} {Y}", "%d %B %Y"),  # 12 March 2019
    "month_day_year": ("{B} {d}, {Y}", "%B %d, %Y"),  # March 12, 2019
    "slashes": ("{dd}/{mm}/{Y}", "%d/%m/%Y"),  # 12/03/2019 (day first)
    "dots": ("{dd}.{mm}.{Y}", "%d.%m.%Y"),  # 12.03.2019 (day first)
    "weekday_short": ("{a} {d} {b} {Y}", "%a %d %b %Y"),  # Tue 12 Mar 2019
    "year_month_day": ("{Y} {B} {d}", "%Y %B %d"),  # 2019 March 12
    "short_month": ("{d} {b} {Y}", "%d %b %Y"),  # 12 Mar 2019
    "weekday_long": ("{A}, {B} {d}, {Y}", "%A, %B %d, %Y"),  # Tuesday, March 12, 2019
}
_LONGEST_SOURCE = len("Wednesday, September 30, 2000")
_ROW_OVERHEAD = 400  # host bytes of a short Python string and its list of ids


def render_date(date: datetime.date, fmt: str) -> str:
    """``date`` written in the format named ``fmt`` (a key of :data:`DATE_FORMATS`).

    Example:
      >>> render_date(datetime.date(2019, 3, 12), "weekday_short")
      'Tue 12 Mar 2019'
    """
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return DATE_FORMATS[fmt][0].format(
        d=date.day,
        dd=f"{date.day:02d}",
        mm=f"{date.month:02d}",
        Y=f"{date.year:04d}",
        B=month,
        b=month[:3],
        A=weekday,
        a=weekday[:3],
    )


class DatesConfig(Seq2seqData):
    """Random dates (uniform over the days of [first_year, last_year]), each written in a
    format drawn uniformly from ``formats`` -> ``YYYY-MM-DD``."""

    name: Literal["dates"] = "dates"
    formats: list[one_of(DATE_FORMATS, "date format")] = Field(
        default_factory=lambda: list(DATE_FORMATS), min_length=1
    )
    first_year: int = Field(1950, ge=1000, le=9999)
    last_year: int = Field(2049, ge=1000, le=9999)

    @model_validator(mode="after")
    def _years_ordered(self):
        if self.first_year > self.last_year:
            raise ValueError(
                f"first_year ({self.first_year}) must be <= last_year ({self.last_year})"
            )
        return self

    def host_bytes(self) -> int:
        return 2 * self.n_samples * (_ROW_OVERHEAD + 32 * (_LONGEST_SOURCE + 12))


def date_vocab() -> tuple[str, ...]:
    """Every character a rendering or an ISO date can use, sorted, after the specials."""
    chars = set("0123456789 ,/.-") | set("".join(MONTHS + WEEKDAYS))
    return char_vocab("".join(sorted(chars)))


def make_dates(cfg: DatesConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    first = datetime.date(cfg.first_year, 1, 1).toordinal()
    last = datetime.date(cfg.last_year, 12, 31).toordinal()
    days = rng.integers(first, last + 1, cfg.n_samples)
    formats = rng.integers(0, len(cfg.formats), cfg.n_samples)
    dates = [datetime.date.fromordinal(int(d)) for d in days]
    sources = [render_date(d, cfg.formats[f]) for d, f in zip(dates, formats, strict=True)]
    targets = [d.isoformat() for d in dates]
    widths = (_LONGEST_SOURCE, len("2019-03-12") + 2)
    info = {"formats": list(cfg.formats)}
    return seq2seq_dataset("dates", sources, targets, date_vocab(), cfg, rng, widths, info=info)
