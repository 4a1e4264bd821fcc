"""A nightly report pipeline, drawn before it runs (``docs/images/render_workflow.svg``).

    canvas render examples.render_workflow:nightly -o nightly.svg   # or .png .pdf .dot
    canvas render examples.render_workflow:nightly --format text    # a tree in the terminal
    python examples/render_workflow.py                               # rewrites the docs picture

Drawing compiles the canvas and sends nothing: no worker, broker or result store is involved.
The picture shows a chain, a chord whose members are chains, a chord of 300 pages collapsed to
one summary node (``--expand`` draws them all), an argument hidden by ``kwargsrepr``, and a
``link`` callback and a ``link_error`` errback as dashed edges.
"""

from __future__ import annotations

from pathlib import Path

from canvas import Canvas, chord

app = Canvas("shop")

REGIONS = ("eu", "us", "apac")


@app.task
def fetch_orders(day):
    return [{"day": day, "region": region, "total": 100} for region in REGIONS]


@app.task
def clean(orders):
    return [order for order in orders if order["total"] > 0]


@app.task
def score(orders, region):
    return sum(order["total"] for order in orders if order["region"] == region)


@app.task
def rank(total):
    return {"total": total, "rank": 1}


@app.task
def merge(scores):
    return {"scores": scores}


@app.task
def render_page(report, page):
    return f"page-{page}"


@app.task
def bundle(pages):
    return {"pages": len(pages)}


@app.task
def publish(bundled, token):
    return "https://reports.example.com/nightly"


@app.task
def announce(url):
    return f"posted {url}"


@app.task
def page_oncall(request, exc, traceback):
    return f"paged about {request.id}"


def nightly():
    """The pipeline for one day: a zero-argument callable, as ``canvas render`` accepts."""
    by_region = chord([score.s(region=region) | rank.s() for region in REGIONS], merge.s())
    pages = chord([render_page.s(page=page) for page in range(300)], bundle.s())
    # The token is a secret: the picture (and the logs) show kwargsrepr instead.
    release = publish.s(token="s3cr3t-t0ken").set(kwargsrepr="{'token': '***'}")
    release.link(announce.s())
    release.link_error(page_oncall.s())
    return fetch_orders.s("2024-06-01") | clean.s() | by_region | pages | release


if __name__ == "__main__":
    from canvas.visualize import render

    target = Path(__file__).resolve().parents[1] / "docs" / "images" / "render_workflow.svg"
    target.parent.mkdir(parents=True, exist_ok=True)
    print(render(nightly(), target, direction="TB"))  # top to bottom: narrow enough for a README
