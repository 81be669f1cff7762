"""The Config Explorer dashboard: one template, a page per job, the inputs in the URL.

Serve it with ``cfgexplorer serve`` or ``panel serve cfgexplorer/app.py``. Every
browser session gets its own page objects (nothing is shared between users).
The query string names the page and its inputs (``?page=capacity&model=...&tp=2``)
and is rewritten as inputs change, so a copied link reopens the same plan;
values that are unknown or invalid are replaced by defaults and listed on the
page. ``&embed=true`` shows the page alone, without the template, for an
iframe in another portal.
"""

from __future__ import annotations

import difflib
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import panel as pn
import param

from cfgexplorer.views.common import Alert, Markdown

log = logging.getLogger(__name__)

TITLE = "Config Explorer"
DEFAULT_PAGE = "capacity"
EXTENSIONS = ("tabulator",)


@dataclass(frozen=True)
class Page:
    """One entry of the navigation: its URL key, label and how to build its view."""

    key: str
    label: str
    build: Callable[[], Any]


def _capacity() -> Any:
    from cfgexplorer.views.capacity import CapacityView

    return CapacityView()


def _sweep() -> Any:
    from cfgexplorer.views.sweep import SweepView

    return SweepView()


def _recommend() -> Any:
    from cfgexplorer.views.recommend import RecommendView

    return RecommendView()


def _fleet() -> Any:
    from cfgexplorer.views.fleet import FleetView

    return FleetView()


PAGES: tuple[Page, ...] = (
    Page("capacity", "Capacity", _capacity),
    Page("recommend", "Recommend", _recommend),
    Page("sweep", "Sweep", _sweep),
    Page("fleet", "Fleet", _fleet),
)
PAGE_BY_KEY = {p.key: p for p in PAGES}


def configure_panel() -> None:
    """Panel settings for the app: local resources only, loading spinners, notifications."""
    pn.extension(*EXTENSIONS, notifications=True, loading_indicator=True, design="bootstrap")
    pn.config.throttled = True  # sliders recompute when released, not on every pixel


def read_query(args: Mapping[str, Any] | None) -> dict[str, str]:
    """The request's query arguments as plain strings (the last value of each)."""
    out = {}
    for key, values in (args or {}).items():
        value = values[-1] if isinstance(values, list | tuple) and values else values
        out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


APP_KEYS = ("page", "embed")  # query keys of the app itself, not of a page
# Keys Bokeh and Panel add or read themselves (server_document adds bokeh-*).
FOREIGN_KEY_PREFIXES = ("bokeh-", "panel-")
FOREIGN_KEYS = ("theme",)


def known_keys() -> set[str]:
    """Every query key a page or the app reads (a link to one page may hold another's)."""
    from cfgexplorer.models import CapacityPlanner, FleetPlanner, GPURecommender, SweepExplorer

    keys = set(APP_KEYS)
    for state in (CapacityPlanner, GPURecommender, SweepExplorer, FleetPlanner):
        keys.update(state.url_params)
    return keys


def unknown_key_notes(query: Mapping[str, str]) -> list[str]:
    """One note per query key that no page reads (a typo such as gpu_mem_util=0.7).

    The note names the key, never its value (a pasted token must not be shown).
    """
    known = known_keys()
    notes = []
    for key in query:
        if key in known or key in FOREIGN_KEYS or key.startswith(FOREIGN_KEY_PREFIXES):
            continue
        shown = key if len(key) <= 40 else key[:37] + "..."
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        if key == "hf_token":
            hint = " (a token is never read from a link; type it in the token field)"
        notes.append(f"ignored {shown!r} from the link: no page has that input{hint}")
        log.info("unknown query key ignored")
    return notes


class Dashboard(param.Parameterized):
    """The pages of one session, the current one, and the URL that describes it."""

    page = param.Selector(
        default=DEFAULT_PAGE, objects=[p.key for p in PAGES], doc="The page on show."
    )
    embed = param.Boolean(default=False, doc="Show the page alone, without the template.")

    def __init__(self, query: Mapping[str, str] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self._views: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._query = dict(query or {})
        self._startup_notes: list[str] = []
        wanted = self._query.get("page", DEFAULT_PAGE)
        if wanted not in PAGE_BY_KEY:
            self._startup_notes.append(f"unknown page {wanted!r} in the link; showing capacity")
            wanted = DEFAULT_PAGE
        self._startup_notes += unknown_key_notes(self._query)
        self.embed = self._query.get("embed", "").lower() in ("1", "true", "yes")
        self.page = wanted
        self.main = pn.Column(sizing_mode="stretch_width")
        self._loaded = False
        self._show()
        self.param.watch(self._show, ["page"])
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self._on_load)

    def view(self, key: str) -> Any:
        """The page's view, built on first visit (its inputs read from the link then)."""
        if key in self._views:
            return self._views[key]
        try:
            view = PAGE_BY_KEY[key].build()
        except Exception as exc:  # a page that cannot be built must not take the app down
            log.exception("building page %s failed", key)
            view = Alert(
                f"The {PAGE_BY_KEY[key].label} page is not available ({type(exc).__name__}).",
                alert_type="danger",
            )
        state = getattr(view, "state", None)
        if state is not None:
            if self._query.get("page", DEFAULT_PAGE) == key:
                state.apply_query(self._query)
            for note in self._startup_notes:
                state.add_note(note)
            self._startup_notes = []
            state.param.watch(lambda *_e: self._write_url(), list(state.url_params))
        self._views[key] = view
        return view

    def state(self, key: str | None = None) -> Any:
        """The Param object behind a page (None for a page without one)."""
        return getattr(self.view(key or self.page), "state", None)

    def query(self) -> dict[str, str]:
        """The query string of the current page and its inputs."""
        query = {"page": self.page}
        state = self.state()
        if state is not None:
            query.update(state.to_query())
        if self.embed:
            query["embed"] = "true"
        return query

    def _show(self, *_events: Any) -> None:
        self.main.objects = [self.view(self.page)]
        self._write_url()

    def _on_load(self) -> None:
        """The browser is connected: from now on the URL follows the inputs."""
        self._loaded = True
        self._write_url()

    def _write_url(self) -> None:
        if not self._loaded:
            return
        try:
            location = pn.state.location
        except ValueError:  # Panel cannot parse a link with a second "?" inside a value
            log.info("the link could not be parsed; the address bar will not follow the inputs")
            return
        if location is None:
            return
        # Only the inputs listed by the page go in the URL: never the Hugging Face token.
        location.search = "?" + urllib.parse.urlencode(self.query())


def _location_for_links_with_two_question_marks() -> None:
    """Give Panel a Location it can use when a link has "?" inside a query value.

    Panel's own parser splits the request URI on every "?" and fails (a blank page),
    though such a link is valid; this parses at the first "?" instead. It fills Panel's
    per-document location cache, a private attribute, and does nothing if that changes.
    """
    doc = pn.state.curdoc
    request = getattr(getattr(doc, "session_context", None), "request", None)
    uri = str(getattr(request, "uri", "") or "")
    locations = getattr(pn.state, "_locations", None)
    if uri.count("?") < 2 or not isinstance(locations, MutableMapping) or doc in locations:
        return
    from panel.io.location import Location
    from panel.util import edit_readonly

    path, _, rest = uri.partition("?")
    search, _, fragment = rest.partition("#")
    location = Location()
    with edit_readonly(location):
        location.param.update(
            href=f"{request.protocol}://{request.host}{uri}",
            hostname=request.host.split(":")[0],
            pathname=path,
            search=f"?{search}",
            hash=f"#{fragment}" if fragment else "",
        )
    locations[doc] = location


def create_app(query: Mapping[str, str] | None = None) -> pn.viewable.Viewable:
    """Build the dashboard for one session (the template, or one page when embedded)."""
    _location_for_links_with_two_question_marks()
    if query is None:
        query = read_query(pn.state.session_args)
    dashboard = Dashboard(query=query)
    if dashboard.embed:
        return dashboard.main

    nav = pn.widgets.RadioButtonGroup(
        options={p.label: p.key for p in PAGES},
        value=dashboard.page,
        orientation="vertical",
        button_type="primary",
        button_style="outline",
        sizing_mode="stretch_width",
        css_classes=["page-nav"],
    )
    nav.link(dashboard, value="page")
    template = pn.template.BootstrapTemplate(
        title=TITLE,
        sidebar=[nav, Markdown(_ABOUT, styles={"font-size": "0.85em"})],
        main=[dashboard.main],
        sidebar_width=220,
        header_background="#2F4F6F",
    )
    template.dashboard = dashboard  # for tests and embedding code
    return template


_ABOUT = """
Plan vLLM deployments: memory per GPU (**Capacity**), GPU choice under latency
goals (**Recommend**), benchmark results (**Sweep**) and many models at once
(**Fleet**). Offline: the bundled model catalog, GPU catalog and demo sweep.
Copy the address bar to share the page with its inputs.
"""


# A token pasted into a link must not reach the server log: tornado's access log writes
# every request's URL, query included. Keys are matched raw or percent-encoded.
SECRET_QUERY_KEYS = ("hf_token", "token")
_SECRET_IN_QUERY = re.compile(
    r"([?&;](?:hf(?:_|%5f)token|token)(?:=|%3d))[^&;#\s]*", flags=re.IGNORECASE
)
REDACTED = "[redacted]"


def redact_query_secrets(text: str) -> str:
    """``text`` with the value of every hf_token= or token= query parameter replaced."""
    return _SECRET_IN_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


class RedactQuerySecrets(logging.Filter):
    """A logging filter that hides token values in the URLs of log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
            redacted = redact_query_secrets(message)
        except Exception:  # a filter must never stop a record, nor raise in the server
            return True
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


# Tornado's request log, and its error log (an uncaught error prints the request URI).
REDACTED_LOGGERS = ("tornado.access", "tornado.application")


def install_log_redaction() -> None:
    """Add the token-redacting filter to tornado's loggers (once per process)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(type(f).__name__ == RedactQuerySecrets.__name__ for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())


def warm_up() -> None:
    """Import the page modules once per process so the first visitor does not wait for it."""
    import holoviews as hv

    from cfgexplorer.views import capacity, fleet, recommend, sweep  # noqa: F401

    hv.extension("bokeh", logo=False)


if __name__.startswith("bokeh"):  # run by `panel serve cfgexplorer/app.py`
    # From the imported module: this script's own globals do not outlive the session.
    from cfgexplorer import app as _app_module

    _app_module.install_log_redaction()
    configure_panel()
    warm_up()
    create_app().servable(title=TITLE)
