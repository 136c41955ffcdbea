"""Repository-wide pytest configuration.

nbval runs the notebooks in notebooks/ (``pytest --nbval-lax``). Widget
outputs carry a model id that changes every run: never compare them.
"""

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def pytest_collectstart(collector):
    # Recipe from nbval's documentation: skip_compare is a tuple of mime types.
    if getattr(collector, "fspath", None) and collector.fspath.ext == ".ipynb":
        collector.skip_compare = (*collector.skip_compare, WIDGET_MIME)
