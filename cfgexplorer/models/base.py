"""What every page's state shares: a message, notes, and a round trip through the URL.

The Param classes in this package hold the state of one dashboard page each.
They build no widgets; :mod:`cfgexplorer.views` does. A page names the inputs
that belong in a shareable link (``url_params``); :meth:`PageState.to_query`
writes them as strings and :meth:`PageState.apply_query` reads them back,
keeping the default (and saying so in ``notes``) for any value that is
unknown or out of bounds, so an edited or stale link never breaks a page.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import param

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
LIST_SEPARATOR = ","  # how a list input is written in one query value


class PageState(param.Parameterized):
    """Base of the page states: a blocking ``message`` plus non-blocking ``notes``."""

    message = param.String(
        default="",
        doc="Why there is no result for the current inputs (one sentence), or empty when fine.",
    )
    notes = param.List(
        default=[],
        item_type=str,
        bounds=(0, None),
        doc="Adjustments made to the inputs (a fallback from the URL, a clamped value).",
    )

    # Inputs written to (and read from) the page URL, in the order they are applied:
    # inputs whose choices depend on another come after it.
    url_params: ClassVar[tuple[str, ...]] = ()

    def to_query(self) -> dict[str, str]:
        """The URL inputs as query-string values (lists joined with commas)."""
        query = {}
        for name in self.url_params:
            query[name] = _to_text(getattr(self, name))
        return query

    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """Set inputs from query-string values; keep the current value for bad ones.

        A number outside its Parameter's bounds is brought to the nearest bound.
        Returns the notes added (also appended to ``notes``), one per value that was
        ignored or adjusted, in the page's words ("pp=0 in the link is below 1; using
        1"). Unknown keys are ignored silently: they may belong to another page.
        """
        added = []
        for name in self.url_params:
            if name not in query:
                continue
            raw = query[name]
            if isinstance(raw, list | tuple):
                raw = raw[-1] if raw else ""
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                value = self.parse_query_value(name, text)
                used, reason = self.clamp_value(name, value)
                self.param.update({name: used})
            except (ValueError, TypeError) as exc:
                reason = f"{_user_reason(exc)}; using {_shown(_to_text(getattr(self, name)))}"
                log.info("query value for %s ignored: %s", name, _short(exc))
            if reason:
                added.append(f"{name}={_shown(text)} in the link {reason}")
        if added:
            self.notes = [*self.notes, *added]
        return added

    def clamp_value(self, name: str, value: Any) -> tuple[Any, str]:
        """``value`` brought within the bounds of the number Parameter ``name``.

        Returns the value to use and, when it had to change, why in a few words
        ("is below 1; using 1"), or "" when the value was fine as it was.
        """
        p = self.param[name]
        if not isinstance(p, param.Number) or isinstance(value, bool):
            return value, ""
        current = _to_text(getattr(self, name))
        if value is None and not p.allow_None:
            return getattr(self, name), f"is empty; using {current}"
        if value is None:
            return value, ""
        if not math.isfinite(value):
            return getattr(self, name), f"is not a finite number; using {current}"
        if isinstance(p, param.Integer) and not float(value).is_integer():
            used, reason = self.clamp_value(name, round(value))
            return used, reason or f"is not a whole number; using {used}"
        if isinstance(p, param.Integer):
            value = int(value)
        low, high = p.bounds or (None, None)
        if low is not None and value < low:
            why = self.bound_reason(name, "low")
            return low, f"is below {_to_text(low)}{why}; using {_to_text(low)}"
        if high is not None and value > high:
            why = self.bound_reason(name, "high")
            return high, f"is above {_to_text(high)}{why}; using {_to_text(high)}"
        return value, ""

    def bound_reason(self, name: str, side: str) -> str:
        """Why a bound is what it is, as ' (the model's maximum)', or ''; pages override it."""
        return ""

    def set_input(self, name: str, value: Any, label: str | None = None) -> Any:
        """Set the input ``name`` from a widget, bringing it within bounds with a note.

        Returns the value actually used, for the widget to show. ``label`` is how
        the page names the input in the note (default: the Parameter name).
        """
        used, reason = self.clamp_value(name, value)
        if reason:
            shown = "" if value is None else f" {_to_text(value)}"
            self.add_note(f"{label or name}{shown} {reason}")
        try:
            setattr(self, name, used)
        except (ValueError, TypeError) as exc:  # a value no bound explains; keep the last one
            self.add_note(f"{label or name} {_to_text(value)} {_user_reason(exc)}; kept")
        return getattr(self, name)

    def parse_query_value(self, name: str, text: str) -> Any:
        """Turn one query string into a value of the Parameter ``name`` (raises ValueError)."""
        p = self.param[name]
        if isinstance(p, param.Boolean):
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("is not true or false")
        if isinstance(p, param.ListSelector):
            items = [t.strip() for t in text.split(LIST_SEPARATOR) if t.strip()]
            unknown = [i for i in items if i not in p.objects]
            if unknown:
                raise ValueError(f"has an unknown choice {unknown[0]!r}")
            return items
        if isinstance(p, param.List):
            return [t.strip() for t in text.split(LIST_SEPARATOR) if t.strip()]
        if isinstance(p, param.Selector):
            for obj in p.objects:
                if _to_text(obj) == text:
                    return obj
            if not p.check_on_set and text:
                return text
            raise ValueError("is not one of the choices")
        if isinstance(p, param.Integer):
            return int(text)
        if isinstance(p, param.Number):
            return float(text)
        if isinstance(p, param.String):
            return text
        raise TypeError("cannot be set from a link")

    def add_note(self, note: str) -> None:
        """Record a non-blocking adjustment for the page to show."""
        if note not in self.notes:
            self.notes = [*self.notes, note]

    def clear_notes(self) -> None:
        """Forget the adjustments shown so far (the user dismissed them)."""
        self.notes = []


FLOAT_DIGITS_IN_LINKS = 12  # significant digits; hides binary rounding, keeps any typed value


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, float):  # 0.8499999999999999 from a slider step reads as 0.85
        return format(value, f".{FLOAT_DIGITS_IN_LINKS}g")
    return "" if value is None else str(value)


_PARAM_PREFIX = re.compile(r"^\w+ parameter '[\w.]+' ")  # how Param names itself in errors
_PLAIN = re.compile(r"[\w.:,/+\-]{1,60}")  # a link value shown without quotes


def _user_reason(exc: BaseException) -> str:
    """Why one input value was refused, in the page's words (no Param internals)."""
    text = _short(exc)
    if text.startswith("invalid literal for int()"):
        return "is not a whole number"
    if text.startswith("could not convert string to float"):
        return "is not a number"
    if type(exc).__name__ == "JSONDecodeError":
        return "is not readable JSON"
    text = _PARAM_PREFIX.sub("", text).rstrip(".")
    if text.startswith(("is ", "has ", "must ", "cannot ")):
        return text
    if text.startswith("expected "):
        return f"is not what the page reads ({text})"
    return f"cannot be used ({text})"


def _shown(text: str) -> str:
    """A value as a note shows it: plain when it is one simple token, quoted otherwise."""
    if _PLAIN.fullmatch(text):
        return text
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _short(exc: BaseException) -> str:
    """The first line of an exception message, trimmed for a note."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def input_names(obj: param.Parameterized) -> list[str]:
    """Names of the Parameters a user sets (precedence >= 0), without ``name``."""
    return [
        n
        for n, p in obj.param.objects("existing").items()
        if n != "name" and (p.precedence is None or p.precedence >= 0) and not p.constant
    ]


class ModelPageState(PageState):
    """A page that loads a model by reference: its Hub token and where it may look."""

    hf_token = param.String(
        default="",
        precedence=-1,
        doc="Hugging Face token for gated Hub models; never logged nor put in the URL.",
    )
    allow_local_paths = param.Boolean(
        default=False,
        precedence=-1,
        doc="Let model be a path on this machine (scripts); the dashboard never allows it.",
    )

    def load_reference(self, ref: str) -> Any:
        """The ModelSpec of a catalog id, Hub id or (scripts only) local path."""
        from cfgexplorer.sources import load_model, load_shared_model

        load = load_model if self.allow_local_paths else load_shared_model
        # The token goes to the Hub client only; it is never logged.
        return load(ref, token=self.hf_token or None)
