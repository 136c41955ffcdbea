"""Author-year labels for the book's bibliography lists.

sphinxcontrib-bibtex prints each entry of a ``{bibliography}`` list behind the
label its pybtex style makes, and the default style, ``alpha``, makes labels
such as ``[DC15]`` while the chapters cite "Diehl and Cook (2015)". This
extension registers a pybtex formatting style, ``authoryear``, whose labels
are "Diehl and Cook, 2015", "Stimberg et al., 2019": the names and year the
text cites, so a reader finds a citation in the list by what it says. Entries
are sorted as their labels read (names, year, then title); two entries that
would get the same label get "2015a", "2015b".

Use it in ``_config.yml``::

    sphinx:
      local_extensions:
        bibstyle: book/_ext
      config:
        bibtex_default_style: authoryear
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

STYLE_NAME = "authoryear"


def _surname(person) -> str:
    """The surname as the text cites it ("van Ooyen", "Frémaux"), LaTeX decoded."""
    parts = person.rich_prelast_names + person.rich_last_names
    return Text(*[Text(part, " ") for part in parts]).render_as("text").strip()


def _names(entry) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in persons]
    if not names:
        return entry.key
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Surname, year", "Surname and Surname, year" or "Surname et al., year"."""

    def format_label(self, entry) -> str:
        year = entry.fields.get("year", "n.d.")
        return f"{_names(entry)}, {year}"

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        count = Counter(labels)
        seen: Counter = Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:  # the same names and year: 2015a, 2015b in the sorted order
                yield label + chr(ord("a") + seen[label])
                seen[label] += 1


def _plain(text: str) -> str:
    """Lower case without accents, so that Földiák sorts with Foldiak."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(c)).lower()


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sorted as the labels read: names, then year, then title."""

    def sorting_key(self, entry):
        return (_plain(_names(entry)), entry.fields.get("year", ""),
                _plain(entry.fields.get("title", "")))


class AuthorYearStyle(UnsrtStyle):
    """The ``unsrt`` entry format, sorted and labelled by author and year."""

    default_sorting_style = AuthorYearSortingStyle
    default_label_style = AuthorYearLabelStyle


def register() -> None:
    register_plugin("pybtex.style.labels", STYLE_NAME, AuthorYearLabelStyle, force=True)
    register_plugin("pybtex.style.sorting", STYLE_NAME, AuthorYearSortingStyle, force=True)
    register_plugin("pybtex.style.formatting", STYLE_NAME, AuthorYearStyle, force=True)


register()


def setup(app):
    register()
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
