"""Pieces every page uses: alerts for messages and notes, downloads, and table export."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable
from typing import Any, ClassVar

import pandas as pd
import panel as pn
import param
from panel.widgets.input import _FloatInputBase, _IntInputBase

log = logging.getLogger(__name__)

CONTROL_WIDTH = 300  # px; the input column of every page
# px; an input in that column: its own margins and those of a pn.Param box around it must
# fit, or the page's right-hand panel covers dropdown arrows and number spinners.
INPUT_WIDTH = CONTROL_WIDTH - 40

# Text that users supply (model ids, link values, uploaded file names) reaches the panes
# below: markdown-it renders it as text, never as HTML.
NO_HTML = {"html": False}


def Markdown(*args: Any, **kwargs: Any) -> pn.pane.Markdown:  # noqa: N802 - a pane factory
    """A Markdown pane that shows any HTML in its text as text."""
    kwargs.setdefault("renderer_options", NO_HTML)
    return pn.pane.Markdown(*args, **kwargs)


def Alert(*args: Any, **kwargs: Any) -> pn.pane.Alert:  # noqa: N802 - a pane factory
    """An Alert pane that shows any HTML in its text as text."""
    kwargs.setdefault("renderer_options", NO_HTML)
    return pn.pane.Alert(*args, **kwargs)


def message_alert(state: param.Parameterized) -> pn.pane.Alert:
    """A red alert showing ``state.message``; hidden while it is empty."""
    alert = Alert(
        state.message, alert_type="danger", visible=bool(state.message), css_classes=["message"]
    )

    def update(event: Any) -> None:
        alert.param.update(object=event.new, visible=bool(event.new))

    state.param.watch(update, ["message"])
    return alert


def notes_alert(state: param.Parameterized) -> pn.Column:
    """A yellow alert listing ``state.notes`` (inputs that were adjusted) with a dismiss button."""
    alert = Alert(alert_type="warning", css_classes=["notes"], margin=(5, 5, 0, 5))
    dismiss = pn.widgets.Button(name="Dismiss", button_type="light", width=90)
    box = pn.Column(alert, dismiss, visible=False)

    def update(*_events: Any) -> None:
        notes = state.notes
        alert.object = "\n".join(f"- {n}" for n in notes)
        box.visible = bool(notes)

    dismiss.on_click(lambda _event: state.clear_notes())
    state.param.watch(update, ["notes"])
    update()
    return box


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: NaN becomes null and infinities the strings 'inf'/'-inf'."""

    def clean(value: Any) -> Any:
        if hasattr(value, "item") and not isinstance(value, str):
            value = value.item()
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
        elif value is pd.NA or value is pd.NaT:
            return None
        return value

    return [
        {k: clean(v) for k, v in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def csv_download(get_frame: Callable[[], pd.DataFrame | None], filename: str, label: str):
    """A button that downloads the current table as CSV (built when clicked)."""

    def callback() -> io.StringIO:
        frame = get_frame()
        buffer = io.StringIO()
        (frame if frame is not None else pd.DataFrame()).to_csv(buffer, index=False)
        buffer.seek(0)
        return buffer

    return pn.widgets.FileDownload(
        callback=callback, filename=filename, label=label, button_type="default", width=180
    )


def json_download(get_text: Callable[[], str], filename: str, label: str):
    """A button that downloads text (JSON) built when clicked."""

    def callback() -> io.StringIO:
        return io.StringIO(get_text())

    return pn.widgets.FileDownload(
        callback=callback, filename=filename, label=label, button_type="default", width=180
    )


def table_json(frame: pd.DataFrame | None) -> str:
    """A table as a JSON list of row objects."""
    if frame is None:
        return "[]"
    return json.dumps(frame_records(frame), indent=1, default=str)


def guarded(fn: Callable[..., Any], alert_target: param.Parameterized) -> Callable[..., Any]:
    """Wrap a widget callback so an unexpected error becomes a message, never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            log.exception("callback %s failed", getattr(fn, "__name__", "?"))
            alert_target.message = f"that did not work ({type(exc).__name__}); try other inputs"
            return None

    return wrapper


def fit_inputs(pane: pn.Param) -> pn.Param:
    """Give every widget of a pn.Param box the input width, so none sticks out of the column."""
    for widget in pane.layout.objects:
        if isinstance(widget, pn.widgets.Widget):
            widget.width = INPUT_WIDTH
    return pane


# Bokeh's own bounds are not used in the browser: its spinner drops a typed value beyond
# them silently, and its plain input replaces it with the bound without sending anything
# when the bound is already the value (the field then shows what was typed, not what is
# used). Every typed value goes to the server instead, which uses the nearest bound with
# a note and sends back the value used; start and end stay on the widget and in its tooltip.
_SERVER_BOUNDS = {"start": None, "end": None}


class WholeNumberInput(_IntInputBase):
    """A whole-number field whose bounds (``start``/``end``) are applied by the server."""

    _rename: ClassVar[dict[str, str | None]] = {**_IntInputBase._rename, **_SERVER_BOUNDS}


class NumberField(_FloatInputBase):
    """A decimal-number field whose bounds (``start``/``end``) are applied by the server."""

    _rename: ClassVar[dict[str, str | None]] = {**_FloatInputBase._rename, **_SERVER_BOUNDS}


def bounded_input(
    state: param.Parameterized, name: str, label: str, **kwargs: Any
) -> WholeNumberInput | NumberField:
    """A number field for the input ``name`` of a page state, within its Parameter's bounds.

    The field holds the bounds (``start``/``end``, and "Accepted: 1 to 40,960" in
    its tooltip) and follows them when they change (max_model_len follows the
    model). A typed value goes through ``state.set_input``, which uses the
    nearest bound when it is outside and says so in a note; the field then
    shows the value used.
    """
    p = state.param[name]
    cls = WholeNumberInput if isinstance(p, param.Integer) else NumberField
    low, high = p.bounds or (None, None)
    kwargs.setdefault("width", INPUT_WIDTH)
    widget = cls(
        label=label,
        value=getattr(state, name),
        start=low,
        end=high,
        description=_range_doc(p.doc, low, high),
        **kwargs,
    )
    syncing: list[bool] = []

    def to_state(event: Any) -> None:
        if syncing:
            return
        used = state.set_input(name, event.new, label)
        if used != event.new:
            show(used)

    def show(value: Any) -> None:
        syncing.append(True)
        try:
            bounds = state.param[name].bounds or (None, None)
            # One update, so the browser never sees a value outside the bounds it holds.
            widget.param.update(
                start=bounds[0],
                end=bounds[1],
                value=value,
                description=_range_doc(state.param[name].doc, *bounds),
            )
        finally:
            syncing.pop()

    widget.param.watch(to_state, "value")
    state.param.watch(lambda e: show(e.new), [name])
    state.param.watch(lambda _e: show(getattr(state, name)), [name], what="bounds")
    return widget


def _range_doc(doc: str | None, low: Any, high: Any) -> str:
    """A Parameter's doc with the values it accepts, for the field's tooltip."""
    if low is None and high is None:
        return doc or ""
    if high is None:
        limits = f"at least {low:,}"
    elif low is None:
        limits = f"at most {high:,}"
    else:
        limits = f"{low:,} to {high:,}"
    return f"{doc or ''} Accepted: {limits}.".strip()
