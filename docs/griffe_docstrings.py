"""Griffe extension for the API reference: pellucid's packages and docstrings as mkdocstrings needs.

What it changes once the package is loaded, before anything is rendered:

- Exports named like the module they live in (``features.maximize`` is the function from
  ``features/maximize.py``). Griffe keeps one member per name and keeps the module
  (mkdocstrings/griffe#124), so ``::: pellucid.features`` would skip ``maximize``; each such
  name is pointed back at what the package's ``__init__`` imports, as Python itself does.
- Sphinx roles (``:func:`maximize```, ``:class:`~pellucid.Explanation```), which Markdown would
  print as a role name before a code span. Each becomes a mkdocs-autorefs reference to the object
  it names, resolved in the docstring's own scope; it is marked optional, so a name the reference
  does not render (a private helper, a module) is shown as code instead of failing the strict
  build.
- ``Example:`` sections, which the Google parser takes for an admonition titled "Example" and
  renders as prose (doctest output such as ``[0, 2]`` then reads as a Markdown link). They are
  parsed as ``Examples:``, so the doctests render as highlighted Python sessions.
- Doctests with no section header, which Markdown reads as nested quotes (``>>>``): they get an
  ``Examples:`` header, indented beneath it from the first ``>>>`` on.
- ``Options:`` sections, which list the keyword arguments as ``Args:`` does: parsed as ``Args:``,
  they become the parameter table (and griffe warns — so the strict build fails — when one names
  a parameter the signature does not have). An entry for several names (``sign, clip, alpha:
  ...``), there or under ``Attributes:``, becomes one entry per name.
"""
from __future__ import annotations

import html
import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_OPTIONS = re.compile(r"^(\s*)Options:[ \t]*$", re.MULTILINE)
_SHARED_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:,\s*\w+)+):(?P<text>.*)$")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`(?P<text>[^`]+)`")


def _identifier(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as written in ``obj``'s docstring (best effort)."""
    if name.startswith("pellucid."):
        return name
    scope = obj if obj.is_module or obj.is_class else obj.parent
    name = name.lstrip(".")  # Sphinx's "relative to this module": the scope resolves it too
    head, _, rest = name.partition(".")
    try:
        resolved = scope.resolve(head) if scope is not None else head
    except Exception:  # griffe raises NameResolutionError; any failure leaves the name as written
        return name
    return f"{resolved}.{rest}" if rest else resolved


def _doctest_section(text: str) -> str:
    """Put an ``Examples:`` header above a docstring's first doctest when it has none."""
    if ">>>" not in text or re.search(r"^\s*Examples?:\s*$", text, re.MULTILINE):
        return text
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(">>>"))
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    body = ["    " + line if line.strip() else line for line in lines[start:]]
    return "\n".join([*lines[:start], f"{indent}Examples:", *body])


def _split_shared_entries(text: str) -> str:
    """``a, b: text`` in an ``Args:``/``Attributes:`` section: ``a: text`` and ``b: as ``a``.``."""
    lines, section_indent = [], None
    for line in text.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in ("Args:", "Attributes:"):
            section_indent = indent
        elif stripped and section_indent is not None and indent <= section_indent:
            section_indent = None
        match = _SHARED_ENTRY.match(line) if section_indent is not None else None
        if match is None:
            lines.append(line)
            continue
        first, *others = [name.strip() for name in match["names"].split(",")]
        lines.append(f"{match['indent']}{first}:{match['text']}")
        lines.extend(f"{match['indent']}{name}: as ``{first}``." for name in others)
    return "\n".join(lines)


def _link_roles(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match) -> str:
        written = match["text"].strip()
        short = written.startswith("~")
        name = written.lstrip("~")
        title = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
        identifier = html.escape(_identifier(obj, name), quote=True)
        return f'<autoref identifier="{identifier}" optional><code>{html.escape(title)}</code></autoref>'

    return _ROLE.sub(link, text)


def _lookup(root: griffe.Object, path: str) -> griffe.Object | griffe.Alias | None:
    head, _, rest = path.partition(".")
    if head != root.name:
        return None
    obj: Any = root
    for part in rest.split(".") if rest else ():
        obj = obj.members.get(part)
        if obj is None:
            return None
    return obj


def _unshadow(pkg: griffe.Module) -> None:
    """Members that are submodules but that ``__init__`` rebinds by an import become aliases."""
    swaps = []
    stack: list[griffe.Object] = [pkg]
    while stack:
        module = stack.pop()
        for name, member in list(module.members.items()):
            if member.is_alias or not member.is_module:
                continue
            stack.append(member)
            target = _lookup(pkg, module.imports.get(name, ""))
            if target is not None and target is not member:
                swaps.append((module, name, target))
    for module, name, target in swaps:  # after every lookup: a swap hides the module's contents
        # set_member also re-points the aliases already resolved to the module (re-exports such
        # as ``attribution.lrp``, resolved while griffe expanded ``__all__``)
        module.set_member(name, griffe.Alias(name, target, parent=module))


class PellucidDocstrings(griffe.Extension):
    """Unshadows the package's exports and rewrites its docstrings once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                text = _EXAMPLE.sub(r"\1Examples:", _doctest_section(obj.docstring.value))
                text = _split_shared_entries(_OPTIONS.sub(r"\1Args:", text))
                obj.docstring.value = _link_roles(obj, text)
            stack.extend(m for m in obj.members.values() if not m.is_alias)
        _unshadow(pkg)  # last: it hides the shadowed modules from the walk above
