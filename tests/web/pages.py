"""A small HTML reader for the tests: the text of elements by id or class, forms' hidden fields.

Built on the standard library's HTMLParser, so that a test reads what a browser would see (the
text after entity decoding), not the markup.
"""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"br", "input", "meta", "link", "img", "hr", "col", "area", "base", "source", "wbr"}


class _Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.parts = tag, attrs, []

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[_Element] = []
        self._open: list[_Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_data(" ")  # cells and terms read apart, as a browser lays them out
        element = _Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        self.handle_data(" ")
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def by_id(self, id_: str) -> str:
        found = [e for e in self.elements if e.attrs.get("id") == id_]
        assert found, f"no element #{id_}"
        return found[0].text

    def has_id(self, id_: str) -> bool:
        return any(e.attrs.get("id") == id_ for e in self.elements)

    def texts(self, cls: str) -> list[str]:
        """The text of each element with the class `cls`."""
        return [e.text for e in self.elements if cls in e.attrs.get("class", "").split()]

    def attr(self, cls: str, name: str) -> list[str]:
        return [e.attrs.get(name, "") for e in self.elements
                if cls in e.attrs.get("class", "").split()]

    def link(self, id_: str) -> str | None:
        found = [e.attrs["href"] for e in self.elements if e.attrs.get("id") == id_]
        return found[0] if found else None

    def field(self, name: str) -> str:
        found = [e.attrs.get("value", "") for e in self.elements
                 if e.tag == "input" and e.attrs.get("name") == name]
        assert found, f"no input named {name}"
        return found[0]

    @property
    def text(self) -> str:
        return " ".join(self.elements[0].text.split()) if self.elements else ""
