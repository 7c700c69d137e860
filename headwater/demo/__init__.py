"""The demo platform: a video-streaming company's topics and tables, loaded into the catalog by ``headwater demo``."""

from __future__ import annotations

from headwater.demo.platform import DemoReport, load_demo

__all__ = ["DemoReport", "load_demo"]
