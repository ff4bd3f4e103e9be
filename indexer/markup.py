"""The text of marked-up documents as a reader sees it: Markdown without its markup, HTML
without the navigation, headers and footers around the content.

* Markdown (:func:`markdown_text`) is parsed as CommonMark with tables (markdown-it-py, the
  parser behind ``rich`` and MyST: maintained, fast, and exact about the syntax) and
  written back as plain text: ``# Title`` is ``Title``, ``**bold**`` is ``bold``,
  ``[text](url)`` is ``text``, an image its alt text, a table its cells; code keeps its
  text. A front matter block (``---`` lines at the top, as Hugo, Jekyll and Obsidian write
  it) is not text: its simple ``key: value`` lines become metadata (numbers as numbers, by the rule of CSV
  values: :mod:`store.typed_values`), and ``title`` falls back
  to the first heading.
* HTML (:func:`drop_boilerplate`) loses ``nav``, ``aside``, ``footer``, ``form``,
  ``button``, ``noscript``, ``template``, elements with an ARIA role of navigation,
  banner, contentinfo, search or complementary, and a ``header`` that is not inside an
  ``article`` or ``main`` (the site's header, not the article's), unless that would leave
  no text at all (a page that is only a list of links stays as it is).
"""

from __future__ import annotations

import re
from typing import Any

from store.typed_values import typed_value

__all__ = ["BOILERPLATE_TAGS", "drop_boilerplate", "markdown_text"]

BOILERPLATE_TAGS = ("nav", "aside", "footer", "form", "button", "noscript", "template")
BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
SIMPLE_LINE = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:[ \t]*(.*?)[ \t]*$")
BLOCK_ENDS = {"paragraph_close", "heading_close", "fence", "code_block", "html_block", "hr", "tr_close"}


def _front_matter(text: str) -> tuple[str, dict[str, Any]]:
    """``(text without its front matter, the matter's simple key: value pairs)``."""
    match = FRONT_MATTER.match(text)
    if match is None:
        return text, {}
    metadata: dict[str, Any] = {}
    for line in match.group(1).splitlines():
        simple = SIMPLE_LINE.match(line)
        if simple is None or line[:1].isspace():
            continue  # nested or list values are not simple
        key, value = simple.groups()
        quoted = False
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value, quoted = value[1:-1], True
        if value and (quoted or not value.startswith(("[", "{", "|", ">", "&", "*"))):
            metadata[key] = value if quoted else typed_value(value)  # numbers as numbers, as in CSV
    return text[match.end() :], metadata


def _inline(token: Any) -> str:
    """The plain text of an inline token's children."""
    out = []
    for child in token.children or ():
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "image":
            out.append(child.content or "")  # the alt text
        elif kind == "html_inline":
            continue
    return "".join(out)


def markdown_text(markdown: str) -> tuple[str, dict[str, Any]]:
    """``(plain text, metadata)`` of a Markdown document: see the module documentation.

    Blocks (paragraphs, headings, list items, code, table rows) are separated by blank
    lines; a table's cells by `` | ``.
    """
    from markdown_it import MarkdownIt

    body, metadata = _front_matter(markdown)
    parser = MarkdownIt("commonmark").enable("table")
    blocks: list[str] = []
    current: list[str] = []
    first_heading = None
    in_heading = False
    for token in parser.parse(body):
        kind = token.type
        if kind == "heading_open":
            in_heading = True
        elif kind == "inline":
            text = _inline(token)
            if in_heading and first_heading is None and text.strip():
                first_heading = text.strip()
            current.append(text)
        elif kind in ("fence", "code_block"):
            current.append(token.content.rstrip("\n"))
        elif kind == "html_block":
            current.append(_html_fragment_text(token.content))
        elif kind in ("th_close", "td_close"):
            current.append(" | ")
        if kind == "heading_close":
            in_heading = False
        if kind in BLOCK_ENDS:
            block = "".join(current).strip().removesuffix("|").strip()
            if block:
                blocks.append(block)
            current = []
    if "".join(current).strip():
        blocks.append("".join(current).strip())
    if "title" not in metadata and first_heading:
        metadata["title"] = first_heading
    return "\n\n".join(blocks), metadata


def _html_fragment_text(fragment: str) -> str:
    import lxml.html

    try:
        return str(lxml.html.fromstring(fragment).text_content()).strip()
    except Exception:  # a fragment lxml cannot read (a lone closing tag): no text
        return ""


def drop_boilerplate(tree: Any) -> Any:
    """Remove the navigation and page furniture from an lxml HTML tree, in place, unless that
    leaves no text; returns the tree."""
    furniture = []
    for element in tree.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        role = (element.get("role") or "").strip().lower() if tag else ""
        if (
            tag in BOILERPLATE_TAGS
            or role in BOILERPLATE_ROLES
            or (tag == "header" and not any(a.tag in ("article", "main") for a in element.iterancestors()))
        ):
            furniture.append(element)
    if not furniture:
        return tree
    kept = set(furniture)
    outermost = [e for e in furniture if not any(a in kept for a in e.iterancestors())]
    remaining = _text_without(tree, outermost)
    if not remaining.strip():
        return tree  # the page is nothing but furniture: keep it all
    for element in outermost:
        element.drop_tree()
    return tree


def _text_without(tree: Any, dropped: list[Any]) -> str:
    """The text of ``tree`` outside the ``dropped`` elements (without changing the tree)."""
    skip = set(dropped)
    parts = []
    stack = [tree]
    while stack:
        element = stack.pop()
        if element in skip:
            if element.tail:
                parts.append(element.tail)
            continue
        if isinstance(element.tag, str) and element.text:
            parts.append(element.text)
        stack.extend(reversed(list(element)))
        if element is not tree and element.tail:
            parts.append(element.tail)
    return "".join(parts)
