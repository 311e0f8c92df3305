"""Data Docs that read offline and hash the same for the same data.

GX's index page builds its table of validations in the browser with jQuery and
bootstrap-table fetched from CDNs, so opened from disk with no network it lists
nothing; it is replaced by a static page. GX also stamps every page with the render
time (a ``?d=`` cache buster on a logo it fetches from S3) and a random uuid4 per
collapsible block; both are replaced so that a page's bytes depend only on the data
and the suite, and ``dvc.lock`` changes only when they do.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# GX's top bar fetches its logo from S3 with the render time appended; the package ships the same image.
_REMOTE_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/logo-long\.png\?d=[0-9TZ.]+"
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Validated:
    """One suite's validation, as the index lists it."""

    suite: str
    run_name: str
    success: bool
    passed: int  # expectations that held
    total: int
    page: str  # the validation page, relative to the site's root
    suite_page: str  # the suite's own page, relative to the site's root


def stabilize(page: str, depth: int, run_time: datetime.datetime) -> str:
    """A GX page with its render-time stamps replaced.

    Args:
        page: the HTML GX wrote.
        depth: how many folders below the site's root the page sits (for the logo's relative path).
        run_time: the run's (fixed, UTC) time. GX prints it in the machine's time zone, yet
            suffixed Z: it is put back in UTC, so that pages agree across machines.
    """
    shown = "%Y-%m-%dT%H:%M:%SZ"  # GX's format
    page = page.replace(run_time.astimezone().strftime(shown), run_time.strftime(shown))
    page = _REMOTE_LOGO.sub("../" * depth + "static/images/logo-long.png", page)
    numbers: dict[str, str] = {}
    # The uuids only pair a "show more" link with its block: numbering them in order keeps the pairs.
    return _UUID.sub(lambda m: numbers.setdefault(m.group(), f"block-{len(numbers) + 1}"), page)


def index(validations: Iterable[Validated]) -> str:
    """A static index page: each suite's validation with its outcome and links, no script."""
    rows = "\n".join(
        "<tr>"
        f'<td class="{"pass" if v.success else "fail"}">{"passed" if v.success else "FAILED"}</td>'
        f'<td><a href="{html.escape(v.page)}">{html.escape(v.suite)}</a></td>'
        f"<td>{v.passed} of {v.total}</td>"
        f"<td>{html.escape(v.run_name)}</td>"
        f'<td><a href="{html.escape(v.suite_page)}">expectations</a></td>'
        "</tr>"
        for v in validations
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data Docs: imgclf validation</title>
<link rel="icon" href="static/images/favicon.ico">
<style>
body {{ font-family: sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.4rem 0.8rem; text-align: left; }}
th {{ background: #f3f3f3; }}
.pass {{ color: #1a7f37; font-weight: bold; }}
.fail {{ color: #c62828; font-weight: bold; }}
</style>
</head>
<body>
<img src="static/images/logo-long.png" alt="Great Expectations" style="height: 40px">
<h1>Data Docs: validation of the manifest</h1>
<p>One row per expectation suite, from <code>imgclf validate</code>. The run is named after the
manifest's sha256 (as in <code>reports/validation.json</code>), so these pages change only when
the data or the suite does.</p>
<table id="validations">
<thead><tr><th>Status</th><th>Suite</th><th>Expectations met</th><th>Run</th><th>Suite page</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def finish(site: Path, validations: list[Validated], run_time: datetime.datetime) -> None:
    """Rewrite the site GX built in ``site``: every page stabilized, the index static."""
    for page in sorted(site.rglob("*.html")):
        depth = len(page.relative_to(site).parts) - 1
        text = page.read_text(encoding="utf-8")
        page.write_text(stabilize(text, depth, run_time), encoding="utf-8")
    (site / "index.html").write_text(index(validations), encoding="utf-8")
