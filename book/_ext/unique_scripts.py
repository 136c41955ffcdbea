"""Sphinx extension: every page loads each of its scripts once.

Sphinx 7.4 writes an inline script that an extension adds after the builder
has started twice: once as added (file name ``None``) and once more from the
registry (file name ``''``, in ``StandaloneHTMLBuilder.prepare_writing``), and
the two do not compare equal. sphinx-thebe's configuration is such a script:
its second copy declares the same ``const THEBE_JS_URL`` again and every page
logs "Identifier 'THEBE_JS_URL' has already been declared" (found by
tests/browser/check_book.py; a bare Sphinx project with sphinx-thebe 0.3.1
shows it too). This keeps the first of any scripts that are the same but for
that ``None`` / ``''``.
"""

from __future__ import annotations


def script_key(script) -> tuple:
    """What makes two of Sphinx's script entries the same script."""
    attributes = getattr(script, "attributes", {}) or {}
    return (
        getattr(script, "filename", None) or "",
        getattr(script, "priority", None),
        tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
    )


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    # Late, so that the scripts other extensions add to this page are seen too.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
